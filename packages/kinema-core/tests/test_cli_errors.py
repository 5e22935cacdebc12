"""What the CLI root prints for exceptions no command turned into a KinemaError: one line, no type names."""

import errno

import click
import pytest
from click.testing import CliRunner

from kinema.core.cli import KinemaGroup


def _failing(exc: BaseException) -> click.Group:
    group = KinemaGroup()

    @group.command("export")
    def export():
        raise exc

    return group


def _error_lines(exc: BaseException) -> list[str]:
    result = CliRunner().invoke(_failing(exc), ["export"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    return result.output.strip().splitlines()


@pytest.mark.parametrize("exc, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out.mp4"),
     "Error: permission denied: '/data/out.mp4'; check its permissions"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "clips/a.mp4"),
     "Error: no such file or folder: 'clips/a.mp4'; check the path"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/videos"),
     "Error: '/data/videos' is a folder where a file was expected"),
    (OSError(errno.ENOSPC, "No space left on device", "/scratch/run/ckpt.safetensors"),
     "Error: no space left on the device while writing '/scratch/run/ckpt.safetensors'; free some space"),
    (MemoryError(), "Error: out of memory in `kinema export`; use smaller sizes"),
    (RuntimeError("shape mismatch\nat layer 3"),
     "Error: shape mismatch at layer 3 — an unexpected failure in `kinema export`; rerun with KINEMA_DEBUG=1"),
    (ValueError(), "Error: (no message) — an unexpected failure in `kinema export`"),
])
def test_unexpected_failures_are_one_line_without_the_exception_type(exc, expected):
    lines = _error_lines(exc)
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert type(exc).__name__ not in lines[0]


def test_debug_shows_the_exception_itself(monkeypatch):
    monkeypatch.setenv("KINEMA_DEBUG", "1")
    result = CliRunner().invoke(_failing(PermissionError(errno.EACCES, "Permission denied", "/x")), ["export"])
    assert isinstance(result.exception, PermissionError)
