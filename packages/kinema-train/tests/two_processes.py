"""Run a test worker script on 2 CPU processes under torchrun (gloo), as the multi-process tests do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 300


def run_on_two_processes(worker: Path, *args: str) -> None:
    """``torchrun --standalone --nproc_per_node 2 worker args...``, one thread per process; fails the test with
    the end of stderr if it exits non-zero or runs past TIMEOUT_S."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker), *args]
    # a new session, so a timeout can kill torchrun's workers too, not only torchrun
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"the 2-process run did not finish in {TIMEOUT_S} s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, stderr[-4000:]
