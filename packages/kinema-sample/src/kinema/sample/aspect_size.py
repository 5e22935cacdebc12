"""A shape for an aspect ratio at a model's own pixel count.

A model whose defaults give a fixed size (the built-in default model: 32x32) was trained at that size; asked for
another aspect ratio alone, it keeps about that many pixels and only changes the shape (the resolution tables
would jump to 240p, hundreds of times the pixels).
"""

from __future__ import annotations

import math

from kinema.core import KinemaError

from .sizes import ratio_value

MIN_RATIO, MAX_RATIO = 1 / 8, 8.0


def parse_ratio(text: str) -> float:
    """``"9:16"`` (height:width, as Open-Sora writes it) or ``"0.56"`` (height/width) -> height / width."""
    value = ratio_value(text)
    if value is None or not (math.isfinite(value) and MIN_RATIO <= value <= MAX_RATIO):
        raise KinemaError(f"--aspect-ratio {text!r} is not a height:width ratio between 1:8 and 8:1; write it "
                          "like 9:16 (landscape), 1:1 or 0.75")
    return value


def size_near_area(area: int, ratio: float, multiple: int) -> tuple[int, int]:
    """(height, width), multiples of ``multiple``, with height/width near ``ratio`` and about ``area`` pixels."""
    height = max(multiple, round(math.sqrt(area * ratio) / multiple) * multiple)
    width = max(multiple, round(math.sqrt(area / ratio) / multiple) * multiple)
    return height, width
