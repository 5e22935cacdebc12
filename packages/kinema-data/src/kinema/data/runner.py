"""Run a stage over a table: all cores, a progress bar, resumable, atomic, failure-tolerant.

- Rows are processed in a process pool (``workers``; 1 runs in this process).
- The output table holds only finished rows (results or a recorded error) and is rewritten
  atomically every ``save_every`` rows, so a killed run loses at most the rows in flight.
- Re-running with the same output skips the rows already there (``retry_errors`` re-does failed ones).
- A row whose processing raises gets ``"{stage}_error"`` = the message; the run goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from kinema.core import KinemaError

from .stage import Stage
from .table import read_table, write_table

# ----------------------------------------------------------------------------- worker side

_worker_stage: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _worker_stage
    import cv2
    import torch

    cv2.setNumThreads(1)  # one process per core: library thread pools would oversubscribe
    torch.set_num_threads(1)
    _worker_stage = stage
    _worker_stage.setup()


def _process_row(stage: Stage, row: dict) -> tuple[list[dict] | None, str | None]:
    try:
        result = stage.process(row)
    except Exception as exc:  # recorded per row; the run goes on
        return None, f"{type(exc).__name__}: {exc}"
    if stage.expands:
        return list(result), None
    return [{**row, **result}], None


def _work(position: int, row: dict) -> tuple[int, list[dict] | None, str | None]:
    assert _worker_stage is not None
    rows, error = _process_row(_worker_stage, row)
    return position, rows, error


# ----------------------------------------------------------------------------- parent side


@dataclass
class RunReport:
    stage: str
    output: Path
    total: int  # rows in the (sharded) input
    skipped: int  # already in the output from an earlier run
    processed: int  # processed now (including failures)
    errors: int  # rows of the output with an error recorded for this stage

    @property
    def partial(self) -> bool:
        return self.errors > 0

    def summary(self) -> str:
        return (
            f"{self.stage}: {self.processed} processed, {self.skipped} already done, "
            f"{self.errors} with errors -> {self.output}"
        )


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_stage(
    stage: Stage,
    table: pd.DataFrame,
    output: str | os.PathLike,
    workers: int | None = None,
    save_every: int = 50,
    retry_errors: bool = False,
    progress: bool = True,
    on_row_done: Callable[[int], None] | None = None,
) -> RunReport:
    output = Path(output)
    if "path" not in table.columns:
        raise KinemaError("the input table has no 'path' column")
    if table["path"].duplicated().any():
        dup = table["path"][table["path"].duplicated()].iloc[0]
        raise KinemaError(f"path {dup!r} appears twice in the table; drop duplicates with "
                       "`kinema data filter IN --remove-path-duplication`")
    table = table.reset_index(drop=True)
    stage.check()
    position_of = {p: i for i, p in enumerate(table["path"])}
    key = "source" if stage.expands else "path"

    # ---- resume: what the output already holds
    done: list[tuple[float, int, dict]] = []  # (input position, order within that input, row)
    if output.exists():
        previous = read_table(output, require=())
        if key not in previous.columns and len(previous):
            raise KinemaError(f"{output} exists but is not output of stage {stage.name!r} (no {key!r} column); "
                           "choose another -o")
        for order, row in enumerate(previous.to_dict("records")):
            failed = isinstance(row.get(stage.error_column), str)
            if retry_errors and failed:
                continue
            done.append((position_of.get(row.get(key), float("inf")), order, _clean(row)))
    done_keys = {row.get(key) for _, _, row in done}
    todo = [(i, _clean(r)) for i, r in enumerate(table.to_dict("records")) if r["path"] not in done_keys]
    skipped = len(table) - len(todo)

    def record(position: int, rows: list[dict] | None, error: str | None, source_row: dict) -> None:
        if error is not None:
            failed = {**source_row, stage.error_column: error}
            if stage.expands:
                failed["source"] = source_row["path"]
            rows = [failed]
        for order, row in enumerate(rows or []):
            done.append((position, order, row))

    def save() -> None:
        ordered = [row for _, _, row in sorted(done, key=lambda x: (x[0], x[1]))]
        frame = pd.DataFrame(ordered)
        if stage.error_column not in frame.columns:
            frame[stage.error_column] = pd.Series([None] * len(frame), dtype=object)
        write_table(frame, output)

    todo_rows = dict(todo)
    bar = tqdm(total=len(table), initial=skipped, desc=stage.name, disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    since_save = 0
    try:
        for position, rows, error in _iterate(stage, todo, workers or default_workers()):
            record(position, rows, error, todo_rows[position])
            bar.update(1)
            since_save += 1
            if on_row_done is not None:
                on_row_done(position)
            if since_save >= save_every:
                save()
                since_save = 0
    finally:
        bar.close()
        save()  # also on Ctrl-C: what finished is kept
    errors = sum(isinstance(row.get(stage.error_column), str) for _, _, row in done)
    return RunReport(stage.name, output, len(table), skipped, len(todo), errors)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None so 'is a string' tests for errors work the same after a CSV round trip."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _pool_context():
    """forkserver: workers fork from a clean server that has the heavy imports done once
    (plain fork would copy this process's torch/OpenCV threads; spawn re-imports per worker)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kinema.data.runner", "kinema.core.video", "cv2"])
    return context


def _iterate(stage: Stage, todo: list[tuple[int, dict]], workers: int):
    """Yield (position, rows, error) as rows finish, in completion order."""
    if not todo:
        return
    if workers <= 1:
        stage.setup()
        for position, row in todo:
            rows, error = _process_row(stage, row)
            yield position, rows, error
        return
    context = _pool_context()
    pending_rows = list(reversed(todo))
    while pending_rows:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(stage,)) as pool:
            in_flight: dict = {}
            try:
                while pending_rows or in_flight:
                    while pending_rows and len(in_flight) < 4 * workers:
                        position, row = pending_rows.pop()
                        in_flight[pool.submit(_work, position, row)] = position
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        result = future.result()  # raises BrokenProcessPool if a worker died
                        del in_flight[future]
                        yield result
            except BrokenProcessPool:
                # A worker died (e.g. a decoder crashed on a corrupt file): fail the rows it may
                # have held, then go on with a fresh pool.
                for position in in_flight.values():
                    yield position, None, "worker process died while processing this row"
                in_flight.clear()
