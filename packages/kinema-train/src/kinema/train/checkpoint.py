"""Atomic, exactly resumable checkpoints.

Layout of ``<checkpoint.dir>/step-000001200/``::

    model.safetensors          dense weights (TP shards gathered), upstream parameter names
    ema.safetensors            dense fp32 EMA of the trainable weights
    optimizer/                 dense, upstream-named AdamW state (torch.distributed.checkpoint): any layout resumes it
    rank-00000.pt ...          per rank: LR schedule, RNG states (torch.load(weights_only=True))
    state.json                 step, data position, layout; written last

Every file goes to ``.tmp-step-.../`` first; when all ranks are done, rank 0 renames the folder and
then rewrites ``latest`` (tmp file + os.replace). A crash at any point leaves the previous
checkpoint and the ``latest`` pointer intact; stale ``.tmp-*`` folders are removed on the next save.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file

from kinema.core import KinemaError

from .distributed import ParallelContext

# test hook: seconds to sleep after each file, so a test can kill a save midway
SAVE_DELAY_ENV = "KINEMA_TRAIN_SAVE_DELAY"


def step_dir_name(step: int) -> str:
    return f"step-{step:09d}"


def _pause() -> None:
    delay = float(os.environ.get(SAVE_DELAY_ENV, "0") or 0)
    if delay:
        time.sleep(delay)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(_listify(random.getstate()))}
    np_state = np.random.get_state()
    state["numpy"] = [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _listify(value):
    return [_listify(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuplify(value):
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _single_process_quiet():
    with warnings.catch_warnings():  # DCP warns that one process without a process group is one process
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    ctx: ParallelContext,
    model_state: Optional[dict[str, torch.Tensor]],
    ema_state: Optional[dict[str, torch.Tensor]],
    rank_state: dict[str, Any],
    meta: dict[str, Any],
    keep: int = 2,
    optimizer_state: Optional[dict[str, torch.Tensor]] = None,
) -> Path:
    """Write one checkpoint. ``model_state``/``ema_state`` are the dense ones (used on rank 0 only);
    ``optimizer_state`` is dense and the same on every rank (collective write, each tensor stored once)."""
    root = Path(root)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}"
    if ctx.is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-step-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    ctx.barrier()
    if ctx.is_main:
        save_file({k: v.contiguous() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        _pause()
        if ema_state is not None:
            save_file({k: v.contiguous() for k, v in ema_state.items()}, str(tmp / "ema.safetensors"))
            _pause()
    if optimizer_state is not None:
        with _single_process_quiet():
            dcp.save(optimizer_state, checkpoint_id=tmp / "optimizer", no_dist=not ctx.distributed)
    torch.save(rank_state, tmp / f"rank-{ctx.rank:05d}.pt")
    _pause()
    ctx.barrier()
    if ctx.is_main:
        _atomic_write_text(tmp / "state.json", json.dumps({"step": step, **meta}, indent=2))
        if final.exists():  # re-saving a step (e.g. after a resume): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        _atomic_write_text(root / "latest", final.name)
        _prune(root, keep)
    ctx.barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    if keep <= 0:
        return
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").exists())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(root: str | os.PathLike, which: str) -> Path:
    """``which`` = "latest" (the pointer in ``root``) or a checkpoint folder."""
    if which == "latest":
        pointer = Path(root) / "latest"
        if not pointer.exists():
            raise KinemaError(f"no checkpoint to resume in {root} (no 'latest' file); drop checkpoint.resume")
        path = Path(root) / pointer.read_text().strip()
    else:
        path = Path(which)
    if not (path / "state.json").exists():
        raise KinemaError(f"{path} is not a complete checkpoint (no state.json); pick another step-* folder")
    return path


def load_meta(path: Path) -> dict[str, Any]:
    return json.loads((path / "state.json").read_text())


def load_model_state(path: Path, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(path / f"{name}.safetensors"))


def load_optimizer_state(path: Path, distributed: bool) -> Optional[dict[str, torch.Tensor]]:
    """The dense optimizer state written by ``save_checkpoint`` (None for a checkpoint without one)."""
    folder = path / "optimizer"
    if not folder.exists():
        return None
    reader = dcp.FileSystemReader(str(folder))
    stored = reader.read_metadata().state_dict_metadata
    state = {k: torch.empty(m.size, dtype=m.properties.dtype) for k, m in stored.items()}
    with _single_process_quiet():
        dcp.load(state, storage_reader=reader, no_dist=not distributed)
    return state


def load_rank_state(path: Path, rank: int) -> dict[str, Any]:
    """This rank's LR schedule and RNG states; a rank the saving run did not have takes rank 0's (every
    rank steps the same schedule, and the steps draw their randomness from per-sample generators)."""
    file = path / f"rank-{rank:05d}.pt"
    if not file.exists():
        file = path / "rank-00000.pt"
    return torch.load(file, weights_only=True)
