"""One progress-bar policy for the VAE commands: tqdm on stderr, so stdout keeps only the results."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(items: Iterable, progress: bool | None, desc: str, unit: str = "clip") -> tqdm:
    """items wrapped in a bar; progress None shows it only when stderr is a terminal (tqdm's disable=None)."""
    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, disable=None if progress is None else not progress)


def note(message: str) -> None:
    """A line on stderr that does not tear an active bar."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()  # tqdm.write does not flush: without it the line can land after later stdout output
