"""Reading upstream checkpoints safely, strict key matching, and atomic saving of converted models."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from kinema.core import KinemaError

MAX_LISTED = 12  # keys shown per category in a mismatch message


class CheckpointMismatchError(KinemaError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""


def read_state_dict(path: str | os.PathLike) -> dict:
    """The object stored at `path`: safetensors, or a torch pickle read with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise KinemaError(f"checkpoint {path} does not exist or is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:
            raise KinemaError(f"cannot read safetensors file {path}: {exc}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise KinemaError(f"{path} holds more than tensors and plain containers, so it is not loaded "
                       f"(weights_only=True): {str(exc).splitlines()[0]}") from None
    except Exception as exc:
        raise KinemaError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None


def is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def unwrap(obj, wrappers: Iterable[str], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict itself, or the one under the first of `wrappers` present (e.g. "ema", "model")."""
    if is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in wrappers:
            if key in obj and is_state_dict(obj[key]):
                return dict(obj[key])
        found = ", ".join(map(repr, list(obj)[:MAX_LISTED]))
        raise KinemaError(f"{source} is not a state dict and has none under {', '.join(map(repr, wrappers))}; "
                       f"its top-level keys are: {found}")
    raise KinemaError(f"{source} holds a {type(obj).__name__}, not a state dict")


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                allowed_missing: Iterable[str] = ()) -> nn.Module:
    """Load `state` into `model`: every key consumed, every model key provided (except `allowed_missing`,
    which keep their initial values), every shape equal. Otherwise raise listing what differs."""
    expected = model.state_dict()
    allowed_missing = set(allowed_missing)
    missing = sorted(set(expected) - set(state) - allowed_missing)
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                         for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        parts = [f"{source} does not match {type(model).__name__}({_config_summary(model)}):"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {_listed(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
        if wrong_shape:
            parts.append(f"  wrong shapes ({len(wrong_shape)}): {_listed(wrong_shape)}")
        parts.append("  check --format and the model config (--set KEY=VALUE), or that the file is complete")
        raise CheckpointMismatchError("\n".join(parts))
    model.load_state_dict(dict(state), strict=False)  # strictness was checked above, with better messages
    return model


def _config_summary(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    if config is None:
        return ""
    keys = [k for k in config if not k.startswith("_")][:8]
    return ", ".join(f"{k}={config[k]!r}" for k in keys) + (", ..." if len(config) > 8 else "")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KinemaError(f"{path} is missing; a model folder needs its config.json") from None
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{path} is not valid JSON: {exc}") from None


def save_model_atomic(model, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """save_pretrained into a temporary sibling folder, then rename it into place.

    An existing `out_dir` is kept unless `overwrite`; even then it is only removed once the new folder is
    complete, so an interrupted conversion never leaves a half-written model at `out_dir`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise KinemaError(f"{out_dir} already exists; choose another output folder or pass --overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if out_dir.exists():
            old = tmp.with_suffix(".old")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
