"""What a pipeline stage is: a picklable object that turns one table row into result columns.

Scorers, captioners, video info, scene detection and scene cutting are all stages, so they share
one runner (process pool, progress bar, resume, atomic saves, per-row errors, shards).
"""

from __future__ import annotations

from typing import Any


class Stage:
    """Subclass and set ``name`` and ``columns``; implement ``process``.

    ``process(row) -> dict`` returns the values of ``columns`` for that row. A stage with
    ``expands = True`` returns a list of whole rows instead (one input video -> many clips).
    Raising marks the row as failed: the runner records ``"{name}_error"`` and goes on.
    Heavy resources (models) belong in ``setup``, which runs once in each worker process.
    """

    name: str = "stage"
    columns: tuple[str, ...] = ()
    expands: bool = False

    def check(self) -> None:
        """Fail early, in the parent process, when something the stage needs is missing (weights, tools)."""

    def setup(self) -> None:
        """Load models or other per-process state; called once per worker before any row."""

    def process(self, row: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        raise NotImplementedError

    @property
    def error_column(self) -> str:
        return f"{self.name}_error"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
