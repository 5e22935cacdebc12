"""Position embeddings: fixed sincos tables (1D, 2D) and rotary embeddings (RoPE).

Numerics follow the upstream checkpoints, which were trained with them:
- 1D sincos is **sin first**: [sin(p*w_i), cos(p*w_i)], w_i = 10000^(-i/(D/2)).
- 2D sincos puts the **w coordinate first**: token (h, w) at index h*W + w gets
  [1D_{D/2}(w), 1D_{D/2}(h)].
- Positions are divided by ``scale`` (emulates a finer or coarser grid) and, with ``base_size``,
  stretched so that the grid always spans ``base_size`` units whatever its size.
- RoPE rotates interleaved pairs (0,1), (2,3), ... with theta 10000.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import nn

# ---------------------------------------------------------------------------------------------
# sincos tables
# ---------------------------------------------------------------------------------------------


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim] table, sin half first. Computed in float64, returned as float32."""
    if dim % 2:
        raise ValueError(f"sincos embedding dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.to(torch.float64).reshape(-1)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def get_1d_sincos_pos_embed(dim: int, length: int, scale: float = 1.0, device=None) -> torch.Tensor:
    """[length, dim] table for positions arange(length) / scale (the temporal embedding)."""
    return sincos_1d(dim, torch.arange(length, dtype=torch.float64, device=device) / scale)


def get_2d_sincos_pos_embed(
    dim: int, grid_hw: tuple[int, int], scale: float = 1.0, base_size: Optional[float] = None, device=None
) -> torch.Tensor:
    """[H*W, dim] table for an H x W token grid (row-major, index h*W + w), w coordinate first."""
    h, w = grid_hw
    grid_h = torch.arange(h, dtype=torch.float64, device=device) / scale
    grid_w = torch.arange(w, dtype=torch.float64, device=device) / scale
    if base_size is not None:
        grid_h = grid_h * (base_size / h)
        grid_w = grid_w * (base_size / w)
    return sincos_grid(dim, grid_h, grid_w)


def sincos_grid(dim: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[len(rows) * len(cols), dim] table for the grid with these row (h) and column (w) positions,
    row-major (index h*W + w), w coordinate first."""
    if dim % 4:
        raise ValueError(f"2D sincos embedding dim must be a multiple of 4, got {dim}")
    coord_h, coord_w = torch.meshgrid(rows, cols, indexing="ij")  # [H, W] each
    return torch.cat([sincos_1d(dim // 2, coord_w), sincos_1d(dim // 2, coord_h)], dim=1)


@functools.lru_cache(maxsize=512)
def _cached_2d(dim: int, h: int, w: int, scale: float, base_size: Optional[float]) -> torch.Tensor:
    return get_2d_sincos_pos_embed(dim, (h, w), scale, base_size, device="cpu")


def position_embedding_2d(
    dim: int, h: int, w: int, scale: float, base_size: Optional[float], device=None, dtype=None
) -> torch.Tensor:
    """[1, H*W, dim] spatial table for dynamic sizes (STDiT2), cached per (grid, scale, base_size)."""
    table = _cached_2d(dim, h, w, float(scale), None if base_size is None else float(base_size))
    return table.to(device=device, dtype=dtype).unsqueeze(0)


# ---------------------------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------------------------


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Interleaved-pair rotation: (x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    pairs = x.unflatten(-1, (-1, 2))
    x1, x2 = pairs.unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the sequence axis (-2) of q/k shaped [..., L, head_dim].

    ``freqs`` [head_dim/2] is an nn.Parameter with requires_grad False so that it appears in the
    state dict as ``rope.freqs``, as in the upstream checkpoints.
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"RoPE head dim must be even, got {dim}")
        self.dim = dim
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def angles(self, length: int, device=None) -> torch.Tensor:
        """[length, dim] rotation angles, each frequency repeated for its pair."""
        positions = torch.arange(length, device=device, dtype=self.freqs.dtype)
        # called from the attention modules, not through forward: under sequential CPU offload no hook has
        # moved freqs, so follow the queries' device
        freqs = self.freqs.to(positions.device)
        return (positions[:, None] * freqs[None]).repeat_interleave(2, dim=-1)

    def rotate_queries_or_keys(self, t: torch.Tensor) -> torch.Tensor:
        angles = self.angles(t.shape[-2], device=t.device).to(t.dtype)
        return t * angles.cos() + rotate_half(t) * angles.sin()

    forward = rotate_queries_or_keys
