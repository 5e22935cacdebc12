"""Open-Sora 1.0 checkpoints (`OpenSora-v1-16x256x256.pth`, training `ema.pt`, ...) -> kinema STDiT.

Layout: an STDiT-XL/2 state dict, possibly under "ema", "model" or "state_dict". The parameter names are
the same on both sides. Dropped and recomputed: the fixed tables `pos_embed` and `pos_embed_temporal`.
Their shapes and values give the defaults for `input_size`, `space_scale` and `time_scale` (e.g. the
16x256x256 release: (16, 32, 32), 0.5, 1.0), and the recomputed tables are checked against them.
"""

from __future__ import annotations

from pathlib import Path

from ..stdit import STDiT
from .checkpoint import load_strict, read_state_dict, unwrap
from .pixart_family import check_table, grid_from_tables, sizes_from_state_dict

RECOMPUTED = ("pos_embed", "pos_embed_temporal")
WRAPPERS = ("ema", "model", "state_dict")


def stdit_config(state: dict, source: str) -> dict:
    kwargs = sizes_from_state_dict(state, source)
    grid = grid_from_tables(state, kwargs["patch_size"])
    if "spatial" in grid or "frames" in grid:
        frames = grid.get("frames", 1)
        height, width = grid.get("spatial", (32, 32))
        kwargs["input_size"] = (frames, height, width)
    kwargs.update({k: grid[k] for k in ("space_scale", "time_scale") if k in grid})
    return kwargs


def load_opensora_v1(src: str | Path, **overrides) -> STDiT:
    """An STDiT with the weights of the Open-Sora 1.0 checkpoint file `src`."""
    state = unwrap(read_state_dict(src), WRAPPERS, str(src))
    model = STDiT(**{**stdit_config(state, str(src)), **overrides})
    hint = "set input_size, space_scale and time_scale to the values the checkpoint was trained with"
    for name in RECOMPUTED:
        check_table(name, state.pop(name, None), getattr(model, name), hint)
    return load_strict(model, state, source=str(src), allowed_missing=RECOMPUTED).eval()
