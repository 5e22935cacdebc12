"""Discovery and loading of plugins from the ``kinema`` entry-point group.

kinema's own packages register their built-in components through the same entry
points as third parties. ``KINEMA_LOAD_PLUGINS`` (comma-separated distribution names)
restricts which *other* distributions load; kinema's own always load. A plugin that
fails to import (or calls ``sys.exit`` while importing) is recorded with its distribution name and the others
still load. Distributions found through the working directory are never loaded (see ``found_via_working_directory``).
"""

from __future__ import annotations

import os
import re
import site
import sysconfig
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "kinema"
OWN_DISTRIBUTIONS = frozenset(
    {"kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"}
)
# What a plugin may raise at import or in a hook without taking every command down: a plugin calling sys.exit()
# must not stop `kinema --help` or `kinema doctor`. KeyboardInterrupt still goes through (Ctrl-C stops the run).
PLUGIN_FAILURES = (Exception, SystemExit)


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
        for dist_name, version, ep in installed_entry_points():
            if allowed is not None and dist_name not in allowed and dist_name not in OWN_DISTRIBUTIONS:
                continue
            try:
                plugin = ep.load()
            except PLUGIN_FAILURES as exc:  # any import-time failure of third-party code
                self.record_failure(ep.name, dist_name, version, exc)
                continue
            self.add(plugin, ep.name, dist_name, version, ep.value)

    def add(self, plugin, name: str, distribution: str, version: str = "", module: str = "") -> None:
        plugin_name = f"{distribution}:{name}"
        self.pm.register(plugin, name=plugin_name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.infos[plugin_name] = PluginInfo(name, distribution, version, module or repr(plugin), hooks)

    def record_failure(self, name: str, distribution: str, version: str, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            error = f"called sys.exit({exc.code!r})"
        else:
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


def installed_entry_points():
    """(distribution, version, entry point) of every installed distribution in the ``kinema`` group, one
    distribution per name (the first on sys.path), skipping those found through the working directory."""
    seen: set[str] = set()
    untrusted = working_directory()
    trusted = site_packages_dirs()
    # distributions() rather than entry_points(): the latter keeps only the first distribution of each name, so a
    # copy in the working directory would hide the installed one instead of being skipped in its favour
    for dist in metadata.distributions():
        name = canonical_name(dist.metadata["Name"] or "")
        if not name or name in seen or found_via_working_directory(dist, untrusted, trusted):
            continue
        seen.add(name)
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            yield name, dist.version, ep


def working_directory() -> Path | None:
    try:
        return Path.cwd().resolve()
    except OSError:  # the working directory was removed
        return None


def site_packages_dirs() -> set[Path]:
    paths = set(site.getsitepackages()) | {site.getusersitepackages()}
    paths |= {sysconfig.get_path(key) for key in ("purelib", "platlib")}
    return {Path(p).resolve() for p in paths if p}


def found_via_working_directory(dist: metadata.Distribution, cwd: Path | None, site_dirs: set[Path]) -> bool:
    """Whether ``dist`` was found through the working directory: its dist-info lies right in it, and the working
    directory is not a site-packages folder.

    ``python -m kinema.train`` (what ``torchrun -m`` runs) and ``python -c`` put the working directory first on
    sys.path, so a ``*.dist-info`` folder dropped into the folder a user happens to run from (a downloaded
    dataset, a shared scratch folder) would have its entry point imported: code run just by starting kinema.
    Plugins are what is installed, never what lies around. Folders below the working directory are only on
    sys.path when someone put them there (PYTHONPATH=plugins, a virtual environment in the project), so they load.
    """
    if cwd is None:
        return False
    try:
        location = Path(dist.locate_file("")).resolve()
    except (NotImplementedError, TypeError, OSError):  # a distribution not stored as files (a zip, a custom finder)
        return False
    return location == cwd and cwd not in site_dirs


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
