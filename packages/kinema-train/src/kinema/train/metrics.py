"""Training logs: a CSV file (always appendable across resumes), optional TensorBoard, a progress bar."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional

from kinema.core import KinemaError

FIELDS = ("step", "loss", "grad_norm", "lr", "samples_per_s", "tokens_per_s", "epoch")


class MetricsLogger:
    """Rank 0 only; other ranks get a logger that does nothing."""

    def __init__(self, folder: str | os.PathLike, csv_enabled: bool, tensorboard: bool, progress: bool,
                 total_steps: int, start_step: int, active: bool = True):
        self.active = active
        self.csv_path: Optional[Path] = None
        self.tb = None
        self.bar = None
        if not active:
            return
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if csv_enabled:
            self.csv_path = folder / "metrics.csv"
            if start_step == 0 or not self.csv_path.exists():
                with open(self.csv_path, "w", newline="") as f:
                    csv.writer(f).writerow(FIELDS)
            else:
                self._truncate_after(start_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise KinemaError("logging.tensorboard=true needs `pip install tensorboard`") from None
            self.tb = SummaryWriter(str(folder / "tensorboard"), purge_step=start_step or None)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        # rows logged after the checkpoint we resume from are replayed: drop them
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def log(self, values: dict) -> None:
        if not self.active:
            return
        if self.csv_path is not None:
            with open(self.csv_path, "a", newline="") as f:
                csv.writer(f).writerow([values.get(k, "") for k in FIELDS])
        if self.tb is not None:
            for key, value in values.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, values["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4f}", gnorm=f"{values['grad_norm']:.3f}",
                                 sps=f"{values['samples_per_s']:.1f}")

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
