"""Open-Sora 1.0 checkpoints (`OpenSora-v1-16x256x256.pth`, training `ema.pt`, ...) -> kinema STDiT.

Layout: an STDiT-XL/2 state dict, possibly under "ema", "model" or "state_dict". The parameter names are
the same on both sides. Dropped and recomputed: the fixed tables `pos_embed` and `pos_embed_temporal`.
Their shapes and values give the defaults for `input_size`, `space_scale` and `time_scale` (e.g. the
16x256x256 release: (16, 32, 32), 0.5, 1.0); a scale the caller passes must reproduce them, and the
recomputed tables are checked against them. A checkpoint saved without the tables says neither its latent
size nor its scales, so the caller passes them.

The model computes what the released code computes (`final_layer_legacy=True`, see STDiT).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from kinema.core import KinemaError

from ..stdit import STDiT
from .checkpoint import load_strict, read_state_dict, unwrap
from .pixart_family import check_table, grid_from_tables, saved_scales, simple_scale, sizes_from_state_dict

RECOMPUTED = ("pos_embed", "pos_embed_temporal")
WRAPPERS = ("ema", "model", "state_dict")
AS_RELEASED = {"final_layer_legacy": True}
# the config fields each table determines, and the values of the released checkpoints
TABLE_FIELDS = {"pos_embed": ("input_size", "space_scale"), "pos_embed_temporal": ("input_size", "time_scale")}
TABLE_OF_SCALE = {"space_scale": "pos_embed", "time_scale": "pos_embed_temporal"}
RELEASES = ("OpenSora-v1-16x256x256 / -HQ-16x256x256: input_size=[16,32,32] space_scale=0.5 time_scale=1.0; "
            "OpenSora-v1-HQ-16x512x512: input_size=[16,64,64] space_scale=1.0 time_scale=1.0")


def stdit_config(state: dict, source: str) -> dict:
    kwargs = sizes_from_state_dict(state, source)
    grid = grid_from_tables(state, kwargs["patch_size"])
    if "spatial" in grid or "frames" in grid:
        frames = grid.get("frames", 1)
        height, width = grid.get("spatial", (32, 32))
        kwargs["input_size"] = (frames, height, width)
    kwargs.update({k: grid[k] for k in ("space_scale", "time_scale") if k in grid})
    return kwargs


def check_given_fields(state: dict, source: str, overrides: dict) -> None:
    """Without a table its fields must be given; with one, a given scale must be the one it was saved with."""
    absent = [name for name in RECOMPUTED if name not in state]
    needed = [f for f in ("input_size", "space_scale", "time_scale")
              if f not in overrides and any(f in TABLE_FIELDS[name] for name in absent)]
    if needed:
        raise KinemaError(f"{source} has no {' or '.join(absent)}, so its latent size and position scales are "
                          f"unknown: pass {', '.join(needed)} (--set KEY=VALUE); the releases: {RELEASES}")
    for name, saved in saved_scales(state).items():
        table, given = TABLE_OF_SCALE[name], overrides.get(name)
        tolerance = max(1e-3, 4 * torch.finfo(state[table].dtype).eps)  # a half-precision table reads coarser
        if given is not None and not math.isclose(float(given), saved, rel_tol=tolerance):
            raise KinemaError(f"{name}={given} does not reproduce the checkpoint's {table}, saved with "
                              f"{name}={simple_scale(1.0 / saved):g}; pass that value or leave {name} unset")


def load_opensora_v1(src: str | Path, **overrides) -> STDiT:
    """An STDiT with the weights of the Open-Sora 1.0 checkpoint file `src`."""
    state = unwrap(read_state_dict(src), WRAPPERS, str(src))
    config = stdit_config(state, str(src))
    check_given_fields(state, str(src), overrides)
    model = STDiT(**{**AS_RELEASED, **config, **overrides})
    hint = "set input_size, space_scale and time_scale to the values the checkpoint was trained with"
    for name in RECOMPUTED:
        check_table(name, state.pop(name, None), getattr(model, name), hint)
    return load_strict(model, state, source=str(src), allowed_missing=RECOMPUTED).eval()
