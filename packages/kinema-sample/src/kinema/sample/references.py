"""Reference images and videos for conditioning: read, resize-and-crop to the clip size."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from kinema.core import KinemaError

Reference = "str | Path | torch.Tensor"


def resize_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[3, T, H, W] -> [3, T, height, width]: scale to cover the target, then centre-crop (Open-Sora)."""
    _, t, h, w = video.shape
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    frames = video.permute(1, 0, 2, 3)  # T as batch
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=new_h < h)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frames[:, :, top:top + height, left:left + width].permute(1, 0, 2, 3).clamp(-1, 1)


def load_reference(ref, height: int, width: int) -> torch.Tensor:
    """A path (image or video) or a float tensor [3, T, H, W] in [-1, 1] -> [3, T, height, width]."""
    if isinstance(ref, (str, Path)):
        from kinema.core.video import read_video, to_float

        video = to_float(read_video(ref).frames)
    elif isinstance(ref, torch.Tensor):
        video = ref.float()
        if video.dim() == 3:  # a single image [3, H, W]
            video = video[:, None]
        if video.dim() != 4 or video.shape[0] != 3:
            raise KinemaError(f"a reference tensor must be [3, T, H, W] (or [3, H, W]) in [-1, 1], "
                           f"got {tuple(ref.shape)}")
    else:
        raise KinemaError(f"a reference must be a file path or a tensor, got {type(ref).__name__}")
    return resize_crop(video, height, width)
