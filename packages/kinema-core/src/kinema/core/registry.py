"""One registry per component kind, filled through the plugin hooks and looked up by name.

A plugin may register a component as ``Lazy("module:attribute")``: its name is known at once and its module is
imported the first time the entry's ``obj`` is used, so listing names imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from .errors import DuplicateNameError, KinemaError, UnknownNameError
from .lazy import Lazy
from .plugins import PLUGIN_FAILURES, get_plugins

# kind -> hook that fills it
KINDS: dict[str, str] = {
    "model": "register_models",
    "vae": "register_vaes",
    "attention_backend": "register_attention_backends",
    "scheduler": "register_schedulers",
    "text_encoder": "register_text_encoders",
    "scorer": "register_scorers",
    "captioner": "register_captioners",
}


class Entry:
    """One registered component; ``obj`` imports a ``Lazy`` registration on first use."""

    def __init__(self, kind: str, name: str, obj: Any, distribution: str, info: dict | None = None):
        self.kind, self.name, self.distribution = kind, name, distribution
        self.info = dict(info or {})
        self._obj = obj

    @property
    def module(self) -> str:
        """The module that defines the component, known without importing it."""
        if isinstance(self._obj, Lazy):
            return self._obj.module
        return getattr(self._obj, "__module__", "") or ""

    @property
    def obj(self) -> Any:
        if isinstance(self._obj, Lazy):
            try:
                self._obj = self._obj.load()
            except ImportError as exc:
                raise KinemaError(
                    f"{self.kind.replace('_', ' ')} {self.name!r} (from {self.distribution}) cannot load: {exc}; "
                    f"install what it needs"
                ) from exc
        return self._obj

    def __repr__(self) -> str:
        return f"Entry({self.kind!r}, {self.name!r}, from {self.distribution!r})"


class Registry:
    """Name -> component for one kind. Filled lazily from every loaded plugin."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise KinemaError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        self.kind = kind
        self._entries: dict[str, Entry] | None = None

    def _fill(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = {}
            plugins = get_plugins()
            hook = getattr(plugins.pm.hook, KINDS[self.kind])
            for impl in hook.get_hookimpls():
                dist = plugins.distribution_of(impl.plugin_name)

                def register(name: str, obj: Any, _dist: str = dist, **info: Any) -> None:
                    self.add(name, obj, _dist, **info)

                try:
                    impl.function(register=register)
                except DuplicateNameError:
                    raise
                except PLUGIN_FAILURES as exc:  # a broken plugin must not take the others down
                    plugins.record_failure(impl.plugin_name, dist, "", exc)
        return self._entries

    def add(self, name: str, obj: Any, distribution: str = "<runtime>", **info: Any) -> None:
        entries = self._fill() if self._entries is None else self._entries
        if name in entries:
            first = entries[name].distribution
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by distribution {first!r} "
                f"and by distribution {distribution!r}; uninstall one or rename it"
            )
        entries[name] = Entry(self.kind, name, obj, distribution, dict(info))

    def entry(self, name: str) -> Entry:
        entries = self._fill()
        if name not in entries:
            raise UnknownNameError(self.kind.replace("_", " "), name, sorted(entries))
        return entries[name]

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._fill())

    def entries(self) -> list[Entry]:
        return [self._fill()[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._fill()


_registries: dict[str, Registry] = {}


def get_registry(kind: str) -> Registry:
    if kind not in _registries:
        _registries[kind] = Registry(kind)
    return _registries[kind]


def lookup(kind: str, name: str) -> Any:
    """The component registered as ``name`` for ``kind``; errors list the names that exist."""
    return get_registry(kind).get(name)


def reset_registries() -> None:
    _registries.clear()
