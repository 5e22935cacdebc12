"""Discovery and loading of plugins from the ``kinema`` entry-point group.

kinema's own packages register their built-in components through the same entry
points as third parties. ``KINEMA_LOAD_PLUGINS`` (comma-separated distribution names)
restricts which *other* distributions load; kinema's own always load. A plugin that
fails to import is recorded with its distribution name and the others still load.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "kinema"
OWN_DISTRIBUTIONS = frozenset(
    {"kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"}
)


def canonical_name(name: str) -> str:
    """PEP 503 normalisation, so ``My_Plugin`` and ``my-plugin`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PluginInfo:
    name: str  # entry-point name
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    name: str
    distribution: str
    version: str
    error: str


class PluginSet:
    """The loaded plugins: a pluggy manager plus what was loaded and what failed."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}  # pluggy plugin name -> info
        self.failures: list[PluginFailure] = []

    def load_entry_points(self, allowed: set[str] | None) -> None:
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = canonical_name(ep.dist.metadata["Name"]) if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            key = (dist_name, ep.name)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            if allowed is not None and dist_name not in allowed and dist_name not in OWN_DISTRIBUTIONS:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure of third-party code
                self.record_failure(ep.name, dist_name, version, exc)
                continue
            self.add(plugin, ep.name, dist_name, version, ep.value)

    def add(self, plugin, name: str, distribution: str, version: str = "", module: str = "") -> None:
        plugin_name = f"{distribution}:{name}"
        self.pm.register(plugin, name=plugin_name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.infos[plugin_name] = PluginInfo(name, distribution, version, module or repr(plugin), hooks)

    def record_failure(self, name: str, distribution: str, version: str, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.failures.append(PluginFailure(name, distribution, version, error))
        warnings.warn(
            f"kinema plugin {name!r} from distribution {distribution!r} failed to load ({error}); "
            "the other plugins are loaded",
            stacklevel=3,
        )

    def distribution_of(self, plugin_name: str) -> str:
        info = self.infos.get(plugin_name)
        return info.distribution if info else plugin_name


def allowed_from_env() -> set[str] | None:
    value = os.environ.get("KINEMA_LOAD_PLUGINS")
    if value is None:
        return None
    return {canonical_name(v.strip()) for v in value.split(",") if v.strip()}


_plugins: PluginSet | None = None


def get_plugins() -> PluginSet:
    """The process-wide plugin set, loaded on first use."""
    global _plugins
    if _plugins is None:
        plugins = PluginSet()
        plugins.load_entry_points(allowed_from_env())
        _plugins = plugins
    return _plugins


def reset_plugins() -> None:
    """Forget loaded plugins and registries (tests; after changing sys.path)."""
    global _plugins
    _plugins = None
    from . import registry

    registry.reset_registries()
