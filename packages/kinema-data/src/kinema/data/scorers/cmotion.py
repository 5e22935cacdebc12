"""Camera-motion label (column ``cmotion``), Open-Sora 1.1's flow-based rule.

Farneback flow from the first frame to every ``step``-th frame (the reference is not updated).
Per compared frame: static if the median flow magnitude < 1 px; else zoom out / zoom in when
fewer than 40% / more than 60% of pixels move away from the centre; else by the angle of the
median flow (image axes, y down): content moving right = pan left, down = tilt up, left = pan
right, up = tilt down. The video's label is the majority (> half) label, else "unknown" if any
frame was static, "pan/tilt" if none zoomed, "dynamic" otherwise.

The angle is taken from the median flow vector rather than the median of per-pixel angles, which
is ill-defined for motion near 0/360 degrees.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

from ..frames import frame_count, frames_at
from ..stage import Stage
from .flow import farneback

LABELS = ("static", "zoom in", "zoom out", "pan left", "pan right", "tilt up", "tilt down", "pan/tilt", "dynamic",
          "unknown")


def frame_label(flow: np.ndarray, static_px: float = 1.0) -> str:
    magnitude = np.linalg.norm(flow, axis=-1)
    if np.median(magnitude) < static_px:
        return "static"
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    outward = (xs - (w - 1) / 2) * flow[..., 0] + (ys - (h - 1) / 2) * flow[..., 1]
    moving = magnitude >= static_px
    zoom = float((outward[moving] > 0).mean()) if moving.any() else 0.5
    if zoom < 0.4:
        return "zoom out"
    if zoom > 0.6:
        return "zoom in"
    dx, dy = np.median(flow[..., 0]), np.median(flow[..., 1])
    angle = float(np.degrees(np.arctan2(dy, dx))) % 360
    if angle >= 315 or angle < 45:
        return "pan left"
    if angle < 135:
        return "tilt up"
    if angle < 225:
        return "pan right"
    return "tilt down"


def video_label(labels: list[str]) -> str:
    if not labels:
        return "unknown"
    top, count = Counter(labels).most_common(1)[0]
    if count > len(labels) / 2:
        return top
    if "static" in labels:
        return "unknown"
    if not {"zoom in", "zoom out"} & set(labels):
        return "pan/tilt"
    return "dynamic"


def camera_motion(frames: np.ndarray, max_side: int = 512) -> str:
    """Label for frames [first, later...]: each later frame is compared with the first."""
    h, w = frames.shape[1:3]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:  # flow in px of the original size, computed on a smaller copy
        size = (round(w * scale), round(h * scale))
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    labels = [frame_label(farneback(frames[0], f) / scale) for f in frames[1:]]
    return video_label(labels)


def cmotion_indices(num_frames: int, step: int = 15) -> list[int]:
    """0, step, 2*step, ...; a video shorter than one step compares its first and last frame."""
    indices = list(range(0, num_frames, step))
    return indices if len(indices) > 1 else [0, max(0, num_frames - 1)]


class CameraMotionScorer(Stage):
    name = "cmotion"
    columns = ("cmotion",)

    def __init__(self, step: int = 15):
        self.step = step

    def process(self, row: dict) -> dict:
        frames = frames_at(row["path"], cmotion_indices(frame_count(row), self.step))
        return {"cmotion": camera_motion(frames)}
