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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _where(exc: OSError) -> str:
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    return " -> ".join(repr(str(p)) for p in paths) if paths else "(the path was not reported)"


def failure_message(exc: BaseException, command: str) -> str:
    """One line for an exception no code turned into a ``KinemaError``: common OS problems say what to do;
    anything else is reported as a failure of ``kinema <command>`` (the type name is for the traceback)."""
    import errno

    where = f"`kinema {command}`" if command else "`kinema`"
    if isinstance(exc, PermissionError):
        return f"permission denied: {_where(exc)}; check its permissions or choose a path you can read and write"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {_where(exc)}; check the path (relative paths start from the working folder)"
    if isinstance(exc, IsADirectoryError):
        return f"{_where(exc)} is a folder where a file was expected; give the path of a file"
    if isinstance(exc, NotADirectoryError):
        return f"{_where(exc)} is a file where a folder was expected; give the path of a folder"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on the device while writing {_where(exc)}; free some space or write elsewhere"
    if isinstance(exc, MemoryError):
        return (f"out of memory in {where}; use smaller sizes (resolution, frames, batch) "
                "or a machine with more memory")
    message = _one_line(str(exc)) or "(no message)"
    return (f"{message} — an unexpected failure in {where}; "
            "rerun with KINEMA_DEBUG=1 for the traceback and report it")
