"""kinema.core: the plugin core every other kinema package builds on."""

from .attention import AttentionBackend
from .errors import DuplicateNameError, KinemaError, UnknownNameError
from .hookspecs import hookimpl, hookspec
from .plugins import get_plugins, reset_plugins
from .registry import KINDS, Entry, Registry, get_registry, lookup

__all__ = [
    "AttentionBackend",
    "DuplicateNameError",
    "Entry",
    "KINDS",
    "KinemaError",
    "Registry",
    "UnknownNameError",
    "get_plugins",
    "get_registry",
    "hookimpl",
    "hookspec",
    "lookup",
    "reset_plugins",
]
