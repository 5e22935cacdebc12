"""Tile geometry shared by the VAEs: linear cross-fades in space, 1-frame-overlap windows in time.

Numbers follow Open-Sora-Plan 1.0: a 256 px tile with overlap 0.25 steps 192 px, blends 8
latents and keeps 24; a 65-frame window steps 64 frames (17 latents, step 16) and the first
latent / decoded frame of every later window is dropped (it was coded as an image).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def blend_v(a: torch.Tensor, b: torch.Tensor, extent: int) -> torch.Tensor:
    """b with its first rows cross-faded from the last rows of the tile above (dim 3 = H)."""
    e = min(a.shape[3], b.shape[3], extent)
    if e <= 0:
        return b
    w = torch.arange(e, device=b.device, dtype=b.dtype).div(e).view(1, 1, 1, e, 1)
    head = a[:, :, :, -e:] * (1 - w) + b[:, :, :, :e] * w
    return torch.cat([head, b[:, :, :, e:]], dim=3)


def blend_h(a: torch.Tensor, b: torch.Tensor, extent: int) -> torch.Tensor:
    """b with its first columns cross-faded from the last columns of the tile on the left (dim 4 = W)."""
    e = min(a.shape[4], b.shape[4], extent)
    if e <= 0:
        return b
    w = torch.arange(e, device=b.device, dtype=b.dtype).div(e).view(1, 1, 1, 1, e)
    head = a[..., -e:] * (1 - w) + b[..., :e] * w
    return torch.cat([head, b[..., e:]], dim=4)


def tiled_2d(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile_in: int,
    tile_out: int,
    overlap_factor: float,
    halo: int = 0,
) -> torch.Tensor:
    """Apply fn to overlapping spatial tiles of x [B,C,T,H,W] and blend the results.

    tile_in: tile size on the input side; tile_out: the size fn makes of a full tile.
    halo (input units, 0 as upstream): extra context read around every tile and cropped from its
    output, so the kept pixels never see the tile's zero-padded border.
    """
    stride = int(tile_in * (1 - overlap_factor))
    extent = int(tile_out * overlap_factor)
    keep = tile_out - extent
    scale = tile_out / tile_in
    if halo and (halo * scale != int(halo * scale)):
        raise ValueError(f"halo {halo} does not map to whole output pixels at scale {scale}")
    height, width = x.shape[3], x.shape[4]

    def run(i: int, j: int) -> torch.Tensor:
        i0, j0 = max(i - halo, 0), max(j - halo, 0)
        i1, j1 = min(i + tile_in + halo, height), min(j + tile_in + halo, width)
        y = fn(x[:, :, :, i0:i1, j0:j1])
        top, left = int((i - i0) * scale), int((j - j0) * scale)
        rows_out, cols_out = int((min(i + tile_in, height) - i) * scale), int((min(j + tile_in, width) - j) * scale)
        return y[:, :, :, top : top + rows_out, left : left + cols_out]

    rows = [[run(i, j) for j in range(0, width, stride)] for i in range(0, height, stride)]
    out_rows = []
    for i, row in enumerate(rows):
        blended = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = blend_v(rows[i - 1][j], tile, extent)
            if j > 0:
                tile = blend_h(row[j - 1], tile, extent)
            blended.append(tile[:, :, :, :keep, :keep])
            row[j] = tile  # later neighbours blend with the vertically blended tile, as upstream
        out_rows.append(torch.cat(blended, dim=4))
    return torch.cat(out_rows, dim=3)


def temporal_windows(length: int, window: int) -> list[tuple[int, int]]:
    """[start, end) windows of `window` frames stepping window-1 (1-frame overlap), the last clipped."""
    if length <= window:
        return [(0, length)]
    step = window - 1
    return [(s, min(s + window, length)) for s in range(0, length - 1, step)]


def tiled_time(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], window: int, context: int = 0,
               context_out: int = 0) -> torch.Tensor:
    """Apply fn per temporal window of x [B,C,T,...]; drop frame 0 of every window after the first.

    context (0 as upstream): extra past frames read before every later window; fn's first
    context_out outputs (those frames' share) are dropped too, so a window's kept outputs see real
    history instead of a replicated first frame.
    """
    outs = []
    for k, (s, e) in enumerate(temporal_windows(x.shape[2], window)):
        if k == 0:
            outs.append(fn(x[:, :, s:e]))
            continue
        start = max(s - context, 0)  # near the clip start less history exists; drop its share only
        drop = 1 + ((s - start) * context_out // context if context else 0)
        outs.append(fn(x[:, :, start:e])[:, :, drop:])
    return torch.cat(outs, dim=2)
