"""The one progress bar of ``kinema data``: tqdm on stderr (stdout stays for results), off with ``--no-progress``."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, *, total: int | None = None, desc: str, enabled: bool = True, unit: str = "it",
                 initial: int = 0) -> tqdm:
    """A tqdm bar on the current ``sys.stderr`` (looked up per call, so redirected streams get it too)."""
    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)
