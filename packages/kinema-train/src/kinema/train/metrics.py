"""Training logs: a CSV file (always appendable across resumes), the trackers (tracking.py), a progress bar."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional

from .tracking import Trackers

FIELDS = ("step", "loss", "grad_norm", "lr", "samples_per_s", "tokens_per_s", "epoch")


def _read_rows(path: Path) -> list[dict]:
    """The complete rows of a metrics CSV, by column name (the columns may be an older run's), step as an int."""
    with open(path, newline="", errors="replace") as f:
        lines = f.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines = lines[:-1]  # cut short mid-row
    rows = []
    try:
        for row in csv.DictReader(lines):
            if None in row or None in row.values():  # too many or too few fields: not a row we wrote whole
                continue
            try:
                row["step"] = int(row.get("step", ""))
            except ValueError:
                continue
            rows.append(row)
    except csv.Error:  # a damaged line (e.g. NUL bytes): keep the rows before it
        pass
    return rows


class MetricsLogger:
    """Rank 0 only; other ranks get a logger that does nothing."""

    def __init__(self, folder: str | os.PathLike, csv_enabled: bool, trackers: Optional[Trackers], progress: bool,
                 total_steps: int, start_step: int, active: bool = True):
        self.active = active
        self.csv_path: Optional[Path] = None
        self.trackers = trackers or Trackers()  # owned (closed) by the caller
        self.bar = None
        if not active:
            return
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if csv_enabled:
            self.csv_path = folder / "metrics.csv"
            self._keep_rows_until(start_step)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def _keep_rows_until(self, step: int) -> None:
        """Rows logged after the step the run starts from are replayed: drop them. A file a kill cut short (empty,
        a half-written last row) keeps its whole rows. Rewritten atomically (temp file + os.replace), so a kill
        during the rewrite leaves the old file."""
        rows = _read_rows(self.csv_path) if self.csv_path.exists() else []
        kept = [row for row in rows if row["step"] <= step]
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            writer.writerows([row.get(k, "") for k in FIELDS] for row in kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.csv_path)

    def log(self, values: dict) -> None:
        if not self.active:
            return
        if self.csv_path is not None:
            with open(self.csv_path, "a", newline="") as f:
                csv.writer(f).writerow([values.get(k, "") for k in FIELDS])
        self.trackers.scalars(values, values["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4f}", gnorm=f"{values['grad_norm']:.3f}",
                                 sps=f"{values['samples_per_s']:.1f}")

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
