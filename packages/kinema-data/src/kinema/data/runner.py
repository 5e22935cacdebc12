"""Run a stage over a table: all cores, a progress bar, resumable, atomic, failure-tolerant.

- Rows are processed in a process pool (``workers``; 1 runs in this process).
- The output table holds only finished rows (results or a recorded error) and is rewritten
  atomically every ``save_every`` rows, so a killed run loses at most the rows in flight.
- Re-running with the same output skips the rows already there (``retry_errors`` re-does failed ones).
- A row whose processing raises gets ``"{stage}_error"`` = the message; the run goes on.
- A row an earlier stage failed on (a string in some ``*_error`` column) is carried to the output
  unprocessed, so one broken file is reported once and never fed to the next stage.
- SIGTERM stops the run like Ctrl-C: workers are stopped, the finished rows are saved, exit status 143.
  Workers die with the run even when it is SIGKILLed (``kinema.data.lifeline``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kinema.core import KinemaError
from kinema.core.progress import progress_bar

from . import lifeline
from .stage import Stage
from .table import read_table, write_table

# ----------------------------------------------------------------------------- worker side

_worker_stage: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _worker_stage
    lifeline.guard()  # a killed run must not leave its workers behind
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
    failed_before: int = 0  # rows an earlier stage failed on, carried over unprocessed

    @property
    def partial(self) -> bool:
        return self.errors > 0

    def summary(self) -> str:
        carried = f", {self.failed_before} failed in an earlier stage" if self.failed_before else ""
        return (
            f"{self.stage}: {self.processed} processed, {self.skipped} already done, "
            f"{self.errors} with errors{carried} -> {self.output}"
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
    todo, failed_before = [], 0
    for i, r in enumerate(table.to_dict("records")):
        if r["path"] in done_keys:
            continue
        r = _clean(r)
        if _failed_earlier(r, stage):
            done.append((i, 0, {**r, "source": r["path"]} if stage.expands else r))
            failed_before += 1
        else:
            todo.append((i, r))
    skipped = len(table) - len(todo) - failed_before

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
    bar = progress_bar(total=len(table), initial=len(table) - len(todo), desc=stage.name, enabled=progress)
    since_save = 0
    try:
        with _sigterm_stops_run(), closing(_iterate(stage, todo, workers or default_workers())) as results:
            for position, rows, error in results:
                record(position, rows, error, todo_rows[position])
                bar.update(1)
                since_save += 1
                if on_row_done is not None:
                    on_row_done(position)
                if since_save >= save_every:
                    save()
                    since_save = 0
    finally:  # also on Ctrl-C or SIGTERM (after the workers are stopped): what finished is kept
        bar.close()
        save()
    errors = sum(isinstance(row.get(stage.error_column), str) for _, _, row in done)
    return RunReport(stage.name, output, len(table), skipped, len(todo), errors, failed_before)


def _failed_earlier(row: dict[str, Any], stage: Stage) -> bool:
    return any(isinstance(v, str) and k.endswith("_error") and k != stage.error_column for k, v in row.items())


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM, so the run unwinds (workers stopped, rows saved) and exits 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def _sigterm_stops_run() -> Iterator[None]:
    """SIGTERM (a scheduler's or ``kill``'s stop) unwinds like Ctrl-C instead of dying mid-save."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None so 'is a string' tests for errors work the same after a CSV round trip."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _pool_context():
    """forkserver: workers fork from a clean server that has the heavy imports done once
    (plain fork would copy this process's torch/OpenCV threads; spawn re-imports per worker)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kinema.data.forkserver_lifeline", "kinema.data.runner", "kinema.core.video",
                                    "cv2"])
    return context


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Drop queued rows and kill the workers now: waiting for rows in flight could take minutes.
    (Python >= 3.14 has ``pool.kill_workers()``; before it the processes are only reachable privately.)"""
    pool.shutdown(wait=False, cancel_futures=True)
    if hasattr(pool, "kill_workers"):
        pool.kill_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


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
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(stage,))
        finished_cleanly = False
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
            finished_cleanly = True
        except BrokenProcessPool:
            # A worker died (e.g. a decoder crashed on a corrupt file): fail the rows it may
            # have held, then go on with a fresh pool.
            for position in in_flight.values():
                yield position, None, "worker process died while processing this row"
            in_flight.clear()
        finally:
            if finished_cleanly:
                pool.shutdown(wait=True)
            else:  # interrupted (Ctrl-C, SIGTERM, the caller stopped early) or the pool broke
                _stop_workers(pool)
