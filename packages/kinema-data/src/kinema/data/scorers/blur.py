"""Sharpness score (column ``blur``): variance of the Laplacian, averaged over three frames.

High = sharp, low = blurry or flat; a common no-reference blur measure.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..frames import frame_count, frames_at, relative_indices
from ..stage import Stage


def laplacian_variance(frame: np.ndarray) -> float:
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


class BlurScorer(Stage):
    name = "blur"
    columns = ("blur",)

    def __init__(self, points: tuple[float, ...] = (0.1, 0.5, 0.9)):
        self.points = tuple(points)

    def process(self, row: dict) -> dict:
        frames = frames_at(row["path"], relative_indices(frame_count(row), self.points))
        return {"blur": float(np.mean([laplacian_variance(f) for f in frames]))}
