"""PixArt-alpha checkpoints (`PixArt-XL-2-512x512.pth`, ...) -> initial STDiT or STDiT2 weights.

Layout: {"state_dict": state_dict} (a bare state dict is accepted too). PixArt's blocks carry the same
names as STDiT's, so the mapping is:
- `x_embedder.proj.weight` [C, 4, 2, 2] -> [C, 4, 1, 2, 2] (a Conv3d with a temporal kernel of 1);
- `pos_embed` dropped (recomputed; its grid and scale give the defaults for `input_size` (T = 1) and
  `space_scale`, so the STDiT computes the PixArt model frame by frame);
- `y_embedder.y_embedding` fitted to the model's caption length: extra rows repeat the last row
  (120 -> 200 for STDiT2-XL/2), surplus rows are cut;
- every other PixArt key is copied; every checkpoint key must be used.
Layers PixArt does not have keep their initialisation: `attn_temp.*` (zero output projection, so a
fresh STDiT computes PixArt frame by frame) and, for STDiT2, the temporal adaLN, QK-norms, size
embedders and RoPE frequencies.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from kinema.core import KinemaError

from .checkpoint import load_strict, read_state_dict, unwrap
from .pixart_family import check_table, grid_from_tables, sizes_from_state_dict

WRAPPERS = ("state_dict", "ema", "model")
NEW_LAYERS = {
    "stdit": (r"blocks\.\d+\.attn_temp\.", r"pos_embed$", r"pos_embed_temporal$"),
    "stdit2": (r"blocks\.\d+\.attn_temp\.", r"blocks\.\d+\.scale_shift_table_temporal$", r"t_block_temp\.",
               r"blocks\.\d+\.attn\.[qk]_norm\.", r"(csize|ar|fl|fps)_embedder\.", r"rope\.freqs$"),
}
# STDiT2-XL/2's own choices, which a PixArt checkpoint cannot tell
STDIT2_DEFAULTS = {"qk_norm": True, "input_sq_size": 512, "model_max_length": 200}


def fit_caption_length(y_embedding: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat the last row (or cut rows) so the null caption has `length` tokens."""
    if y_embedding.shape[0] >= length:
        return y_embedding[:length].clone()
    extra = y_embedding[-1:].expand(length - y_embedding.shape[0], -1)
    return torch.cat([y_embedding, extra], dim=0)


def load_pixart(src: str | Path, target: str = "stdit", **overrides):
    """An STDiT (`target="stdit"`) or STDiT2 (`"stdit2"`) initialised from the PixArt checkpoint `src`."""
    if target not in NEW_LAYERS:
        raise KinemaError(f"unknown target {target!r} for a PixArt checkpoint; targets: {', '.join(NEW_LAYERS)}")
    state = unwrap(read_state_dict(src), WRAPPERS, str(src))
    patch_weight = state.get("x_embedder.proj.weight")
    if patch_weight is None or patch_weight.dim() != 4:
        raise KinemaError(f"{src} is not a PixArt (image) checkpoint: x_embedder.proj.weight should be a Conv2d "
                       f"kernel [C, in, p, p]; for Open-Sora checkpoints use --format opensora-v1")
    state["x_embedder.proj.weight"] = patch_weight.unsqueeze(2)
    kwargs = sizes_from_state_dict(state, str(src))
    grid = grid_from_tables(state, kwargs["patch_size"])
    saved_pos_embed = state.pop("pos_embed", None)

    if target == "stdit":
        from ..stdit import STDiT

        if "spatial" in grid:
            kwargs["input_size"] = (1, *grid["spatial"])
        if "space_scale" in grid:
            kwargs["space_scale"] = grid["space_scale"]
        model = STDiT(**{**kwargs, **overrides})
        if tuple(model.config.input_size[1:]) == tuple(grid.get("spatial", ())):
            check_table("pos_embed", saved_pos_embed, model.pos_embed,
                        "set space_scale to the PixArt model's (lewei) scale")
    else:
        from ..stdit2 import STDiT2

        model = STDiT2(**{**kwargs, **STDIT2_DEFAULTS, **overrides})

    caption_length = model.y_embedder.y_embedding.shape[0]
    state["y_embedder.y_embedding"] = fit_caption_length(state["y_embedder.y_embedding"], caption_length)
    patterns = [re.compile(p) for p in NEW_LAYERS[target]]
    initialised = [k for k in model.state_dict() if any(p.match(k) for p in patterns)]
    return load_strict(model, state, source=str(src), allowed_missing=initialised).eval()
