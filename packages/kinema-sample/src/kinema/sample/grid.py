"""Several clips side by side in one video, to compare prompts (or seeds) frame by frame.

Written here rather than taken from torchvision's make_grid: torchvision is not a dependency, and this is a
few lines on uint8 [T, H, W, 3] frames.
"""

from __future__ import annotations

import math

import torch

GAP = 2  # black pixels between cells


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns): as square as possible, wider than tall."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def tile_videos(videos: list[torch.Tensor], gap: int = GAP) -> torch.Tensor:
    """uint8 clips [T, H, W, 3] -> one clip [T, rows*H + gaps, columns*W + gaps, 3]. A shorter clip holds its
    last frame; a smaller one sits in the cell's top-left corner on black."""
    if not videos:
        raise ValueError("tile_videos needs at least one clip")
    frames = max(v.shape[0] for v in videos)
    height, width = max(v.shape[1] for v in videos), max(v.shape[2] for v in videos)
    rows, columns = grid_shape(len(videos))
    out = torch.zeros((frames, rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3),
                      dtype=torch.uint8)
    for i, video in enumerate(videos):
        if video.shape[0] < frames:
            video = torch.cat([video, video[-1:].expand(frames - video.shape[0], -1, -1, -1)])
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        out[:, top:top + video.shape[1], left:left + video.shape[2]] = video
    return out
