"""Loaders for upstream checkpoints, one module per layout, and the `kinema dit convert` command.

Every loader matches keys strictly (every checkpoint key consumed, every model key provided, shapes equal),
apart from the keys its module documents as dropped (recomputed tables) or initialised (new layers).
Files are read with safetensors or `torch.load(weights_only=True)`.

    from kinema.dit.convert import load
    model = load("latte", "Open-Sora-Plan-v1.0.0/17x256x256")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from kinema.core import KinemaError

from .checkpoint import CheckpointMismatchError, load_strict, read_state_dict, save_model_atomic


@dataclass(frozen=True)
class Format:
    module: str  # kinema.dit.convert.<module>
    loader: str  # function(src, **config_overrides) -> model
    description: str
    takes_target: bool = False


FORMATS = {
    "opensora-v1": Format("opensora_v1", "load_opensora_v1", "Open-Sora 1.0 .pth (STDiT-XL/2) -> STDiT"),
    "opensora-v1.1": Format("opensora_v11", "load_opensora_v11",
                            "Open-Sora 1.1 Hugging Face folder (model_type STDiT2) -> STDiT2"),
    "pixart": Format("pixart", "load_pixart", "PixArt-alpha .pth -> STDiT/STDiT2 initialisation (see --target)",
                     takes_target=True),
    "latte": Format("latte", "load_latte", "Open-Sora-Plan 1.0 LatteT2V folder or Latte t2v.pt -> LatteT2V"),
}


def load(fmt: str, src, target: str | None = None, **overrides):
    """The kinema model holding the weights of the upstream checkpoint `src` in layout `fmt`.

    `target` ("stdit" or "stdit2", default "stdit") picks the model a PixArt checkpoint initialises.
    """
    if fmt not in FORMATS:
        raise KinemaError(f"unknown checkpoint format {fmt!r}; formats: {', '.join(sorted(FORMATS))}")
    spec = FORMATS[fmt]
    loader = getattr(importlib.import_module(f"{__name__}.{spec.module}"), spec.loader)
    if spec.takes_target:
        return loader(src, target=target or "stdit", **overrides)
    if target is not None:
        raise KinemaError(f"a target model is only chosen for --format pixart; {fmt} always gives one model")
    return loader(src, **overrides)


def convert(fmt: str, src, out_dir, overwrite: bool = False, target: str | None = None, **overrides) -> Path:
    """Load `src` and write it as a diffusers-layout folder (config.json + safetensors) at `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:  # fail before the (slow) load
        raise KinemaError(f"{out_dir} already exists; choose another output folder or pass --overwrite")
    return save_model_atomic(load(fmt, src, target=target, **overrides), out_dir, overwrite=overwrite)


__all__ = ["FORMATS", "CheckpointMismatchError", "convert", "load", "load_strict", "read_state_dict",
           "save_model_atomic"]
