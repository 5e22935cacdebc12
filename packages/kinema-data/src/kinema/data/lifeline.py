"""Make pool processes die with the process that started them.

A killed ``kinema data`` stage must not leave its workers behind. Python's forkserver hands every
worker the write end of the pipe the forkserver watches for "the parent is gone", and the workers
block on a call queue whose write end they hold themselves: once the parent is killed nothing ever
wakes them, so the forkserver and the workers (hundreds of MB each) live on. Python offers no
switch for this, hence two guards written here:

- ``die_with_parent``: on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill this
  process the moment its parent exits, however the parent died (even SIGKILL, which no handler sees).
- ``watch_parent``: a daemon thread that exits the process when ``os.getppid()`` changes (the
  parent died and the process was re-parented); it covers systems without prctl.

Workers call both in their initializer (their parent is the forkserver); the forkserver calls both
when it imports ``kinema.data.forkserver_lifeline`` (listed in its preload; its parent is the main
process). Killing the main process thus takes down the forkserver, which takes down the workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_INTERVAL_S = 0.5


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent exits (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """Exit this process as soon as its parent changes (it died); polls ``os.getppid()``."""
    parent = os.getppid()  # may legitimately be 1: `kinema` run as a container's first process

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)  # no cleanup: there is no one left to hand results to
            time.sleep(interval)

    thread = threading.Thread(target=watch, name="kinema-parent-watch", daemon=True)
    thread.start()
    return thread


def guard() -> None:
    """Both guards: the kernel's where it exists, the polling thread everywhere."""
    die_with_parent()
    watch_parent()
