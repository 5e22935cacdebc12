"""kinema.core: the plugin core every other kinema package builds on.

Importing it is cheap (no torch): the CLI and plugin discovery start from here. ``AttentionBackend``
(which needs torch) loads on first access.
"""

from .errors import DuplicateNameError, KinemaError, UnknownNameError
from .hookspecs import hookimpl, hookspec
from .lazy import Lazy, lazy_exports
from .plugins import get_plugins, reset_plugins
from .registry import KINDS, Entry, Registry, get_registry, lookup

__getattr__, __dir__ = lazy_exports(__name__, {"AttentionBackend": ".attention"})

__all__ = [
    "AttentionBackend",
    "DuplicateNameError",
    "Entry",
    "KINDS",
    "KinemaError",
    "Lazy",
    "Registry",
    "UnknownNameError",
    "get_plugins",
    "get_registry",
    "hookimpl",
    "hookspec",
    "lazy_exports",
    "lookup",
    "reset_plugins",
]
