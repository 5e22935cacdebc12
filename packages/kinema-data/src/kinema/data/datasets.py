"""Training datasets over a metadata table (Open-Sora 1.1's VideoTextDataset and VariableVideoTextDataset).

An item is ``{"video": float [C, T, H, W] in [-1, 1], "text", "num_frames", "height", "width",
"fps"}`` (the aspect-ratio condition is made from height and width where a model needs it:
``kinema.dit.contract.size_conditions``). Frames are taken every ``frame_interval`` from a random start;
images give T = 1 (fps 120, as upstream). ``resize_crop`` resizes so the target is covered, then centre-crops.
An unreadable file makes the item retry another random index (up to 10 times), as upstream.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from kinema.core import KinemaError
from kinema.core.video import VideoReadError, probe_video, read_video, to_float

from .table import IMAGE_EXTENSIONS, read_table

IMAGE_FPS = 120


def resize_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[C, T, h, w] -> [C, T, height, width]: scale to cover the target (bilinear), centre-crop."""
    h, w = video.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        video = F.interpolate(video.transpose(0, 1), size=(new_h, new_w), mode="bilinear", align_corners=False,
                              antialias=True).transpose(0, 1)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return video[..., top : top + height, left : left + width]


def temporal_indices(total: int, num_frames: int, frame_interval: int, rng: random.Random) -> list[int]:
    """num_frames indices every frame_interval from a random start; a short video is stretched evenly."""
    span = (num_frames - 1) * frame_interval + 1
    if total >= span:
        start = rng.randint(0, total - span)
        return list(range(start, start + span, frame_interval))
    return np.linspace(0, total - 1, num_frames).round().astype(int).tolist()


def load_clip(path: str, num_frames: int, frame_interval: int, rng: random.Random,
              total: int | None = None) -> tuple[torch.Tensor, float]:
    """uint8 [T, H, W, 3] and fps; images are one frame."""
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        return read_video(path, num_frames=1).frames, float(IMAGE_FPS)
    total = total or probe_video(path).num_frames
    indices = temporal_indices(total, num_frames, frame_interval, rng)
    first = indices[0]
    video = read_video(path, start=first, num_frames=indices[-1] - first + 1)
    return video.frames[[i - first for i in indices]], video.fps


def _as_table(data: pd.DataFrame | str | os.PathLike) -> pd.DataFrame:
    table = data if isinstance(data, pd.DataFrame) else read_table(data, require=("path", "text"))
    for column in ("path", "text"):
        if column not in table.columns:
            raise KinemaError(f"a training table needs a {column!r} column")
    return table.reset_index(drop=True)


class VideoTextDataset(Dataset):
    """Fixed num_frames and image_size for every item."""

    def __init__(self, data, num_frames: int = 16, frame_interval: int = 1, image_size: tuple[int, int] = (256, 256),
                 root: str | None = None, seed: int | None = None):
        self.table = _as_table(data)
        self.num_frames, self.frame_interval, self.image_size = num_frames, frame_interval, tuple(image_size)
        self.root = root
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.table)

    def _path(self, index: int) -> str:
        path = str(self.table.at[index, "path"])
        return os.path.join(self.root, path) if self.root else path

    def _total(self, index: int) -> int | None:
        n = self.table.at[index, "num_frames"] if "num_frames" in self.table.columns else None
        return int(n) if n is not None and n == n else None

    def _item(self, index: int, num_frames: int, height: int, width: int) -> dict:
        frames, fps = load_clip(self._path(index), num_frames, self.frame_interval, self.rng, self._total(index))
        video = resize_crop(to_float(frames), height, width)
        t = video.shape[1]
        return {"video": video, "text": str(self.table.at[index, "text"]), "num_frames": t, "height": height,
                "width": width, "fps": fps}

    def _with_retries(self, index: int, *shape) -> dict:
        last_error = None
        for _ in range(10):
            try:
                return self._item(index, *shape)
            except VideoReadError as exc:
                last_error = exc
                index = self.rng.randrange(len(self))
        raise KinemaError(f"10 unreadable samples in a row; last: {last_error}")

    def __getitem__(self, index: int) -> dict:
        return self._with_retries(int(index), self.num_frames, *self.image_size)


class VariableVideoTextDataset(VideoTextDataset):
    """Index with the bucket sampler's ``"{index}-{T}-{H}-{W}"`` strings: size chosen per batch."""

    def __init__(self, data, frame_interval: int = 1, root: str | None = None, seed: int | None = None):
        super().__init__(data, num_frames=1, frame_interval=frame_interval, image_size=(1, 1), root=root, seed=seed)

    def __getitem__(self, index: str) -> dict:
        try:
            i, t, h, w = (int(x) for x in str(index).split("-"))
        except ValueError:
            raise KinemaError(f"index {index!r}: expected 'index-T-H-W' from VariableVideoBatchSampler") from None
        return self._with_retries(i, t, h, w)
