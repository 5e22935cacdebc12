"""Picking frames out of a video for scoring."""

from __future__ import annotations

import numpy as np

from kinema.core.video import probe_video, read_video


def frame_count(row: dict) -> int:
    """From the table when ``kinema data info`` filled it, else from the file."""
    n = row.get("num_frames")
    if n is not None and n == n and n > 0:
        return int(n)
    return probe_video(row["path"]).num_frames


def frames_at(path: str, indices: list[int]) -> np.ndarray:
    """uint8 [len(indices), H, W, 3] for the given (sorted or not, maybe repeated) frame indices."""
    wanted = sorted(set(indices))
    first, last = wanted[0], wanted[-1]
    video = read_video(path, start=first, num_frames=last - first + 1).frames.numpy()
    return video[[i - first for i in indices]]


def relative_indices(num_frames: int, points: tuple[float, ...]) -> list[int]:
    """Frames at relative positions (0.5 = the middle frame), clamped to the video."""
    return [min(num_frames - 1, max(0, int(p * num_frames))) for p in points]
