"""A `kinema data` stage killed with SIGKILL or SIGTERM leaves none of its processes behind
(forkserver, workers); on SIGTERM it first saves the rows that finished."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kinema.data.table import read_table, write_table

RUN_SCRIPT = """
import sys
from kinema.core import get_registry
from kinema.core.cli import main
from stages_for_tests import CountingStage
get_registry("scorer").add("counting", CountingStage)
main(sys.argv[1:])
"""
ROWS = 200


def _alive(pid: int) -> bool:
    """Running (a zombie is dead: in a container nothing may reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _session(sid: int) -> set[int]:
    """Processes in session ``sid``: the run and everything it started (they keep the session when orphaned)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the run's processes through /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_stage_leaves_no_process_and_sigterm_saves_finished_rows(tmp_path, signum):
    write_table(pd.DataFrame({"path": [f"/clips/{i:03d}.mp4" for i in range(ROWS)]}), tmp_path / "in.csv")
    out, log = tmp_path / "out.csv", tmp_path / "log.txt"
    log.touch()
    save_every = 1 if signum == signal.SIGKILL else 10_000  # SIGTERM: only the final save can keep the rows
    env = {**os.environ, "KINEMA_TEST_LOG": str(log), "PYTHONPATH": str(Path(__file__).parent)}
    run = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, "data", "score", "counting", str(tmp_path / "in.csv"),
                            "-o", str(out), "--workers", "2", "--save-every", str(save_every), "-O", "delay=0.2",
                            "--no-progress"], env=env, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: len(log.read_text().split()) >= 8, 90, "rows to start")
        processes = _session(run.pid)
        assert len(processes) >= 4, processes  # the run, the forkserver, two workers (and a resource tracker)
        os.kill(run.pid, signum)  # the main process only, as a scheduler or `kill PID` would
        output = run.communicate(timeout=30)[0].decode()
        _wait_for(lambda: not any(_alive(pid) for pid in processes), 10, f"{processes} to exit")
    finally:
        for pid in _session(run.pid):
            os.kill(pid, signal.SIGKILL)
    if signum == signal.SIGTERM:
        assert run.returncode == 128 + signal.SIGTERM, output
        saved = read_table(out)
        started = log.read_text().split()
        # 8 rows had started, so at least 4 had finished (2 workers: one row in progress, one not yet collected)
        assert 4 <= len(saved) < ROWS and set(saved["path"]) <= set(started)
        assert saved["count_len"].notna().all() and saved["count_error"].isna().all()
