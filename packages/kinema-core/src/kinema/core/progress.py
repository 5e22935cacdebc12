"""The progress bars of kinema's commands: tqdm on stderr, so stdout keeps only the results.

``enabled``: True shows the bar, False hides it (``--no-progress``), None shows it only when stderr is a
terminal (tqdm's ``disable=None``). ``sys.stderr`` is looked up per call, so a redirected stream gets the bar.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, *, desc: str, enabled: bool | None = True, total: int | None = None,
                 unit: str = "it", initial: int = 0) -> tqdm:
    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled is None else not enabled)


def note(message: str) -> None:
    """A line on stderr that does not tear an active bar."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()  # tqdm.write does not flush: without it the line can land after later stdout output
