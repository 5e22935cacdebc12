"""Clips for VAE training and evaluation: read with kinema.core.video, resized, cropped, 1+4k frames."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from kinema.core import KinemaError
from kinema.core.video import probe_video, read_video, to_float

from .interface import interpolate_frames

VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".webp"}


def list_videos(path: str | Path) -> list[Path]:
    """A video file, or every video under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise KinemaError(f"{str(path)!r} is neither a video file nor a folder")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise KinemaError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {str(path)!r}")
    return files


def resize_center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """[C,T,H,W]: short side -> size (bilinear, antialiased), then a center size x size crop."""
    _, _, h, w = video.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    video = interpolate_frames(video[None], (nh, nw))[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return video[:, :, top : top + size, left : left + size]


def load_clip(path: str | Path, num_frames: int | None, resolution: int | None, start: int = 0) -> torch.Tensor:
    """[3,T,H,W] in [-1,1]: num_frames from `start` (None: all), resized and center-cropped.

    The frame count is left as read; format_video_shape makes it 1+k*tc with a warning."""
    video = to_float(read_video(path, start=start, num_frames=num_frames).frames)
    return resize_center_crop(video, resolution) if resolution else video


class ClipBank:
    """Decoded, resized clips kept in memory (uint8); random windows for training."""

    def __init__(self, paths: list[Path], resolution: int, max_frames: int = 64):
        if not paths:
            raise KinemaError("no training videos given")
        self.clips = []
        for p in paths:
            n = min(probe_video(p).num_frames, max_frames)
            video = resize_center_crop(to_float(read_video(p, num_frames=n).frames), resolution)
            self.clips.append(((video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        self.names = [p.name for p in paths]

    def sample(self, batch_size: int, num_frames: int, rng: random.Random) -> torch.Tensor:
        """[B,3,num_frames,R,R] in [-1,1]; clips shorter than num_frames are skipped."""
        usable = [c for c in self.clips if c.shape[1] >= num_frames]
        if not usable:
            raise KinemaError(f"no training clip has {num_frames} frames; lower --frames")
        batch = []
        for _ in range(batch_size):
            clip = rng.choice(usable)
            s = rng.randint(0, clip.shape[1] - num_frames)
            batch.append(clip[:, s : s + num_frames].float() / 127.5 - 1)
        return torch.stack(batch)
