"""Stages used by the runner tests (importable by spawned worker processes)."""

from __future__ import annotations

import os
import time

from kinema.data.stage import Stage


class CountingStage(Stage):
    """Logs every path it processes to $KINEMA_TEST_LOG, sleeps a bit, fails on paths containing 'bad'."""

    name = "count"
    columns = ("count_len",)

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        # read here, in the process that builds the stage: the pool's forkserver may have started earlier in the
        # test session, and its workers carry the environment of that moment, not the test's
        self.log = os.environ.get("KINEMA_TEST_LOG")

    def process(self, row):
        with open(self.log or os.environ["KINEMA_TEST_LOG"], "a") as log:
            log.write(row["path"] + "\n")
        time.sleep(self.delay)
        if "bad" in row["path"]:
            raise ValueError(f"cannot process {row['path']}")
        return {"count_len": len(row["path"])}
