"""Errors meant for the user: the CLI prints their message, never a traceback."""

from __future__ import annotations


class KinemaError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class UnknownNameError(KinemaError, KeyError):
    """A name looked up in a registry does not exist."""

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, available
        names = ", ".join(available) if available else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; available: {names}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateNameError(KinemaError):
    """Two plugins registered the same name for the same kind."""
