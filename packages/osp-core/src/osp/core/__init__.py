"""osp.core: the plugin core every other osp package builds on."""

from .attention import AttentionBackend
from .errors import DuplicateNameError, OspError, UnknownNameError
from .hookspecs import hookimpl, hookspec
from .plugins import get_plugins, reset_plugins
from .registry import KINDS, Entry, Registry, get_registry, lookup

__all__ = [
    "AttentionBackend",
    "DuplicateNameError",
    "Entry",
    "KINDS",
    "OspError",
    "Registry",
    "UnknownNameError",
    "get_plugins",
    "get_registry",
    "hookimpl",
    "hookspec",
    "lookup",
    "reset_plugins",
]
