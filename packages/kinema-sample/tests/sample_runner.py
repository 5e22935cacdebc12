"""In-process `kinema sample ...` through the `kinema` root command (what a user sees, and the exit code)."""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

# "Error: ValueError: ..." is how an exception no check turned into a message would reach the user
EXCEPTION_PREFIX = re.compile(r"Error: [A-Za-z_.]*(Error|Exception|Warning)\b")


@dataclass
class Run:
    exit_code: int
    output: str  # stdout and stderr together
    exception: BaseException | None


def kinema(*args, cwd: Path | None = None, input: bytes | None = None) -> Run:
    from kinema.core.cli import build_cli

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(build_cli(), [str(a) for a in args], env={"KINEMA_PIPELINE": None},
                                    input=input)
    finally:
        os.chdir(old)
    return Run(result.exit_code, result.output, result.exception)  # click >= 8.2: stdout and stderr interleaved


def assert_one_line_error(run: Run, *needles: str) -> str:
    """A refusal: exit 1 or 2, one `Error:` line naming what is wrong, no traceback, no exception type name."""
    assert run.exit_code in (1, 2), (run.exit_code, run.output, run.exception)
    assert isinstance(run.exception, SystemExit) or run.exception is None, run.exception
    assert "Traceback" not in run.output and not EXCEPTION_PREFIX.search(run.output), run.output
    errors = [line for line in run.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (signature, IHDR, one empty IDAT, IEND): a few bytes that
    would decode to a huge image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path
