"""Checks on where a command will write, run before any slow work so a long job never dies at its last step."""

from __future__ import annotations

import os
from pathlib import Path

from kinema.core import KinemaError


def _check_creatable(path: Path, option: str) -> None:
    """The nearest existing ancestor of path (path itself if it exists) is a folder we may write into."""
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise KinemaError(f"{option} {str(path)!r} cannot be created: {str(existing)!r} is a file, not a folder; "
                          f"choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise KinemaError(f"{option} {str(path)!r} cannot be written: no write permission in {str(existing)!r}; "
                          f"choose another {option}")


def check_output_file(path: str | os.PathLike, option: str = "-o") -> Path:
    """A file the command will (over)write: not an existing folder, its parent creatable and writable."""
    path = Path(path)
    if path.is_dir():
        raise KinemaError(f"{option} {str(path)!r} is an existing folder where a file is expected; give a file name "
                          f"(e.g. {str(path / ('out' + (path.suffix or '.mp4')))!r}) or a path that is not a folder")
    _check_creatable(path.parent, option)
    return path


def check_output_folder(path: str | os.PathLike, option: str = "-o") -> Path:
    """A folder the command will create or write into: not an existing file, creatable and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KinemaError(f"{option} {str(path)!r} is an existing file where a folder is expected; "
                          f"give a folder path")
    _check_creatable(path, option)
    return path


def check_model_folder(path: str | os.PathLike, option: str = "-o") -> Path:
    """A model folder saved by swapping in a sibling temporary folder: not an existing file, and its parent
    creatable and writable (the swap happens there)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KinemaError(f"{option} {str(path)!r} is an existing file where a model folder is expected; "
                          f"give a folder path")
    _check_creatable(path.absolute().parent, option)
    return path
