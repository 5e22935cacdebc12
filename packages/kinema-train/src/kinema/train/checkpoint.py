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
Pruning never removes the step ``latest`` names.

A run folder holds one run: training into a folder that holds another run's checkpoints or logs
without resuming it is refused (:func:`claim_run_folder`) unless ``checkpoint.overwrite`` moves them aside.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass
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
        old = root / f".old-{final.name}"
        if final.exists():  # re-saving a step (e.g. after a resume): replace it whole
            # a folder cannot be replaced in one rename: move the old one aside and delete it only after the
            # new one is in place, so the two renames are the only window in which ``latest`` names no folder
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _atomic_write_text(root / "latest", final.name)
        shutil.rmtree(old, ignore_errors=True)
        _prune(root, keep)
    ctx.barrier()
    return final


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _prune(root: Path, keep: int) -> None:
    """Keep the ``keep`` newest complete steps up to the one ``latest`` names (never that one). Steps after it
    (left by a run resumed from an earlier step) are not this run's history yet: they are replaced when the run
    reaches them, never pruned in its place."""
    if keep <= 0:
        return
    pointer = root / "latest"
    latest = pointer.read_text().strip() if pointer.exists() else None
    done = sorted((p for p in root.glob("step-*") if (p / "state.json").exists() and _step_of(p) >= 0),
                  key=_step_of)
    if latest is not None and (root / latest).is_dir():
        done = [p for p in done if _step_of(p) <= _step_of(root / latest)]
    for old in done[:-keep]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)


# what a step folder must hold to be resumed (the optimizer folder and EMA are optional: older checkpoints)
REQUIRED_FILES = ("state.json", "model.safetensors", "rank-00000.pt")


def resolve_checkpoint(root: str | os.PathLike, which: str) -> Path:
    """``which`` = "latest" (the pointer in ``root``) or a checkpoint folder."""
    if which == "latest":
        pointer = Path(root) / "latest"
        if not pointer.exists():
            raise KinemaError(f"no checkpoint to resume in {root} (no 'latest' file); point checkpoint.dir at the "
                              "run folder, or drop checkpoint.resume to start a new run")
        path = Path(root) / pointer.read_text().strip()
        if not path.is_dir():
            raise KinemaError(f"{pointer} names {path.name}, which does not exist; set checkpoint.resume to one of "
                              f"the step-* folders in {root}")
    else:
        path = Path(which)
        if not path.is_dir():
            raise KinemaError(f"checkpoint {path} does not exist; set checkpoint.resume to latest or a step-* folder")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise KinemaError(f"checkpoint {path} is incomplete (no {', '.join(missing)}); resume from another step-* "
                          "folder (checkpoint.resume=<folder>)")
    return path


# ---------------------------------------------------------------------------------------------
# one run per folder
# ---------------------------------------------------------------------------------------------

# what a run writes besides its step-* (and .tmp-step-*) folders, "vae" being the VAE task's trained VAE;
# config.yaml is not among them, since a user may keep the config they train with in the run folder (the trainer
# keeps a replaced one as config-before-step-*)
RUN_FILES = ("latest", "metrics.csv", "train.log", "tensorboard", "wandb", "wandb-run-id", "samples", "vae")


@dataclass(frozen=True)
class RunFolderWords:
    """How a front end names the run folder and its two ways on, in claim_run_folder's errors: a config's keys by
    default; `kinema vae train` says -o, --resume and --overwrite."""

    folder: str = "checkpoint.dir"
    resume: str = "checkpoint.resume=latest"
    overwrite: str = "set checkpoint.overwrite=true"


def run_contents(root: str | os.PathLike) -> list[Path]:
    """What a previous run left in ``root``: checkpoints, the ``latest`` pointer, logs."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(("step-", ".tmp-step-", ".old-step-"))]
    found += [root / name for name in RUN_FILES if (root / name).exists()]
    return sorted(found)


def claim_run_folder(root: str | os.PathLike, resume: Optional[str], overwrite: bool,
                     words: RunFolderWords = RunFolderWords()) -> Optional[Path]:
    """Refuse to mix two runs in ``root``; with ``overwrite``, move the old run aside (returns where to).

    Resuming (``latest``, or a step folder inside ``root``) continues the run there; any other start needs a
    folder without a run. Read-only unless ``overwrite``: every rank may call it, rank 0 alone moves."""
    root = Path(root)
    contents = run_contents(root)
    if not contents:
        return None
    if resume is not None and (resume == "latest" or Path(resume).resolve().parent == root.resolve()):
        return None
    if not overwrite:
        names = ", ".join(p.name for p in contents[:3]) + (", ..." if len(contents) > 3 else "")
        if not any(p.name == "latest" or p.name.startswith("step-") for p in contents):
            # stopped before its first checkpoint: there is nothing to resume, only logs to keep
            raise KinemaError(f"{words.folder}={str(root)!r} holds the logs of a run that saved no checkpoint "
                              f"({names}), so it cannot be resumed; choose a new {words.folder}, or "
                              f"{words.overwrite} to move them aside and start over")
        what = f"resume it with {words.resume}" if resume is None else \
            f"resume its own checkpoints ({words.resume}) instead of {resume}"
        raise KinemaError(f"{words.folder}={str(root)!r} already holds a run ({names}); {what}, choose a new "
                          f"{words.folder}, or {words.overwrite} to move the old run aside and start over")
    return root / time.strftime("replaced-%Y%m%d-%H%M%S", time.gmtime())


def move_run_aside(root: str | os.PathLike, aside: Path, also: tuple[str, ...] = ()) -> Path:
    """Move the old run's checkpoints and logs into ``aside`` (a new folder; a suffix if the name is taken), with
    the files named in ``also`` that a front end keeps in the run folder (`kinema vae train`'s videos.csv)."""
    target, n = aside, 1
    while target.exists():
        target, n = aside.with_name(f"{aside.name}-{n}"), n + 1
    target.mkdir(parents=True)
    root = Path(root)
    kept = [root / "config.yaml", *root.glob("config-before-step-*.yaml"), *(root / name for name in also)]
    for item in run_contents(root) + [p for p in kept if p.exists()]:
        os.replace(item, target / item.name)
    return target


def load_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise KinemaError(f"checkpoint {path}: state.json cannot be read ({exc}); resume from another step-* "
                          "folder") from None


def load_model_state(path: Path, name: str = "model") -> dict[str, torch.Tensor]:
    file = path / f"{name}.safetensors"
    if not file.is_file():
        raise KinemaError(f"checkpoint {path} has no {file.name}; resume from another step-* folder "
                          "(checkpoint.resume=<folder>)")
    try:
        return load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise KinemaError(f"checkpoint {path}: {file.name} cannot be read ({' '.join(str(exc).split())}); resume "
                          "from another step-* folder") from None


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """The checkpoint's dense weights into a built (not yet sharded) model; a model of another size or family
    is a one-line error naming the first parameters that differ."""
    state = load_model_state(path)
    check_fits(path, {k: tuple(v.shape) for k, v in state.items()},
               {k: tuple(v.shape) for k, v in model.state_dict().items()}, getattr(model, "config", None))
    model.load_state_dict(state)


def saved_shapes(path: Path) -> dict[str, tuple]:
    """Parameter shapes of a checkpoint's model.safetensors, read from its header (no weights loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise KinemaError(f"checkpoint {path}: model.safetensors cannot be read ({' '.join(str(exc).split())}); "
                          "resume from another step-* folder") from None


def _saved_kwargs_differences(path: Path, model_config: Optional[dict]) -> str:
    """" (saved with hidden_size=48; this model has hidden_size=96)": the model.kwargs of the saving run that this
    model's config (diffusers ConfigMixin) has otherwise; empty when unknown."""
    try:
        saved = json.loads((path / "state.json").read_text())["config"]["model"]["kwargs"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not model_config or not isinstance(saved, dict):
        return ""

    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b

    differ = [k for k, v in saved.items() if k in model_config and not same(v, model_config[k])]
    if not differ:
        return ""
    return (f" (saved with {', '.join(f'{k}={saved[k]}' for k in differ)}; this model has "
            f"{', '.join(f'{k}={model_config[k]}' for k in differ)})")


def check_fits(path: Path, saved: dict[str, tuple], own: dict[str, tuple], model_config: Optional[dict] = None) -> None:
    """A checkpoint whose parameters do not match the model's, by name and shape, is a one-line error naming
    the first few that differ (and the model.kwargs that differ, when the model has a config)."""
    shapes = [f"{k} {list(v)} in the checkpoint, {list(own[k])} here"
              for k, v in saved.items() if k in own and tuple(v) != tuple(own[k])]
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    if shapes or missing or unexpected:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} parameter shapes differ ({'; '.join(shapes[:3])})")
        if missing:
            parts.append(f"{len(missing)} parameters missing from it ({', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} it has that this model lacks ({', '.join(unexpected[:3])})")
        raise KinemaError(f"checkpoint {path} does not fit this model: {', '.join(parts)}"
                          f"{_saved_kwargs_differences(path, model_config)}; set model.name and "
                          f"model.kwargs as the run that saved it (its config is in {path / 'state.json'}), "
                          "or start a new run from its weights with model.pretrained")


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
