"""Optical-flow score: how much the content moves (column ``flow``), with OpenCV's Farneback flow.

Upstream scores with UniMatch on frames [0, 10, 20, 30] resized to 320x576 (portrait transposed)
and averages |flow| over both components, all pixels and the pairs. Same frames, size and
average here; the flow itself comes from Farneback (no learned weights).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..frames import frame_count, frames_at
from ..stage import Stage

FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow [H, W, 2] (dx, dy) from RGB frame a to RGB frame b."""
    gray_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, **FARNEBACK)


def flow_indices(num_frames: int, gap: int = 10, count: int = 4) -> list[int]:
    """Upstream's [0, 10, 20, 30]; shorter videos get ``count`` evenly spaced frames instead."""
    if num_frames > gap * (count - 1):
        return [i * gap for i in range(count)]
    return sorted(set(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int).tolist()))


def flow_score(frames: np.ndarray, size: tuple[int, int] = (320, 576)) -> float:
    """Mean |dx|, |dy| over all pixels and consecutive pairs, after resizing to ``size`` (H, W)."""
    if len(frames) < 2:
        return 0.0
    h, w = frames.shape[1:3]
    target_h, target_w = size if w >= h else size[::-1]  # portrait videos: transposed target
    resized = [cv2.resize(f, (target_w, target_h), interpolation=cv2.INTER_AREA) if (h, w) != (target_h, target_w)
               else f for f in frames]
    magnitudes = [np.abs(farneback(a, b)).mean() for a, b in zip(resized[:-1], resized[1:])]
    return float(np.mean(magnitudes))


class FlowScorer(Stage):
    name = "flow"
    columns = ("flow",)

    def __init__(self, gap: int = 10, size: tuple[int, int] = (320, 576)):
        self.gap, self.size = gap, tuple(size)

    def process(self, row: dict) -> dict:
        frames = frames_at(row["path"], flow_indices(frame_count(row), self.gap))
        return {"flow": flow_score(frames, self.size)}
