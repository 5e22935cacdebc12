"""What the weights of a PixArt / STDiT / STDiT2 checkpoint say about the model that wrote them.

These checkpoints carry no config, so sizes are read off the tensor shapes, and the latent grid and the
position scales off the fixed sin-cos tables (`pos_embed`, `pos_embed_temporal`) when they were saved.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from kinema.core import KinemaError

PIXART_FAMILY_KEYS = ("x_embedder.proj.weight", "y_embedder.y_proj.fc1.weight", "y_embedder.y_embedding",
                      "final_layer.linear.weight", "blocks.0.mlp.fc1.weight")


def sizes_from_state_dict(state: dict, source: str) -> dict:
    """Model sizes shared by PixArt, STDiT and STDiT2: hidden, depth, channels, patch, caption, heads."""
    missing = [k for k in PIXART_FAMILY_KEYS if k not in state]
    if missing:
        raise KinemaError(f"{source} is not a PixArt/STDiT state dict: it has no {', '.join(missing)}")
    patch_weight = state["x_embedder.proj.weight"]
    hidden, in_channels = patch_weight.shape[:2]
    patch = tuple(patch_weight.shape[2:])
    out_channels = state["final_layer.linear.weight"].shape[0] // math.prod(patch)
    if out_channels not in (in_channels, 2 * in_channels):
        raise KinemaError(f"{source}: the final layer predicts {out_channels} channels per patch, neither "
                       f"{in_channels} nor {2 * in_channels} (learned sigma)")
    return {
        "hidden_size": hidden,
        "in_channels": in_channels,
        "patch_size": patch,
        "depth": len({k.split(".")[1] for k in state if k.startswith("blocks.")}),
        "num_heads": 16 if hidden % 16 == 0 else 1,  # not in the shapes: XL models use 16, override otherwise
        "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / hidden,
        "pred_sigma": out_channels == 2 * in_channels,
        "caption_channels": state["y_embedder.y_proj.fc1.weight"].shape[1],
        "model_max_length": state["y_embedder.y_embedding"].shape[0],
    }


def position_of_second_entry(table: torch.Tensor, offset: int, dim: int) -> float:
    """Position encoded by row 1 of a sin-cos table whose 1-D part of width `dim` starts at column `offset`.

    The lowest frequency, omega = 10000^(-(n-1)/n) with n = dim/2, has sin(p * omega) ~ p * omega, which
    stays invertible far beyond any grid size."""
    n = dim // 2
    omega = 10000.0 ** (-(n - 1) / n)
    value = float(table.reshape(-1, table.shape[-1])[1, offset + n - 1])
    return math.asin(max(-1.0, min(1.0, value))) / omega


def simple_scale(position: float) -> float:
    """The scale 1/position, snapped to a simple fraction (0.5, 2/3, ...) as configs write them."""
    return float(Fraction(1.0 / position).limit_denominator(64))


def saved_scales(state: dict) -> dict:
    """space_scale / time_scale the saved `pos_embed` / `pos_embed_temporal` were computed with, unrounded
    (only for tables of two positions or more: a single position is 0 at any scale)."""
    found = {}
    pos = state.get("pos_embed")
    if pos is not None and pos.shape[-2] > 1:
        found["space_scale"] = 1.0 / position_of_second_entry(pos, 0, pos.shape[-1] // 2)  # (h 0, w 1)
    temporal = state.get("pos_embed_temporal")
    if temporal is not None and temporal.shape[-2] > 1:
        found["time_scale"] = 1.0 / position_of_second_entry(temporal, 0, temporal.shape[-1])
    return found


def grid_from_tables(state: dict, patch: tuple[int, int, int]) -> dict:
    """input_size, space_scale and time_scale implied by saved `pos_embed` / `pos_embed_temporal` tables."""
    found = {name: simple_scale(1.0 / scale) for name, scale in saved_scales(state).items()}
    pos = state.get("pos_embed")
    if pos is not None:
        tokens = pos.shape[-2]
        side = math.isqrt(tokens)
        if side * side == tokens:
            found["spatial"] = (side * patch[1], side * patch[2])
    temporal = state.get("pos_embed_temporal")
    if temporal is not None:
        found["frames"] = temporal.shape[-2] * patch[0]
    return found


def check_table(name: str, saved: torch.Tensor | None, computed: torch.Tensor, hint: str) -> None:
    """A dropped table must equal the one the model recomputes, or the config is not the trained one."""
    if saved is None or saved.shape != computed.shape:
        return
    tolerance = max(1e-4, 4 * torch.finfo(saved.dtype).eps)
    error = (saved.float() - computed.float()).abs().max().item()
    if error > tolerance:
        raise KinemaError(f"the checkpoint's {name} differs from the one recomputed for this config (max error "
                       f"{error:.2g}): {hint}")
