"""Text score (column ``ocr``): fraction of the frame covered by words Tesseract finds.

Upstream counts DBNet++ boxes on frame 10; here Tesseract (via pytesseract) finds word boxes
with confidence above ``min_conf`` and the score is their total area over the frame area, so
videos of any size compare. ``ocr_boxes`` keeps the box count.
"""

from __future__ import annotations

import shutil

import numpy as np

from osp.core import OspError

from ..frames import frame_count, frames_at
from ..stage import Stage


def text_boxes(frame: np.ndarray, min_conf: float = 60.0) -> list[tuple[int, int, int, int]]:
    """Word boxes (left, top, width, height) Tesseract is at least ``min_conf`` sure of."""
    import pytesseract

    data = pytesseract.image_to_data(frame, output_type=pytesseract.Output.DICT)
    boxes = []
    for text, conf, left, top, w, h in zip(data["text"], data["conf"], data["left"], data["top"],
                                           data["width"], data["height"]):
        if str(text).strip() and float(conf) >= min_conf:
            boxes.append((int(left), int(top), int(w), int(h)))
    return boxes


def text_area_ratio(frame: np.ndarray, min_conf: float = 60.0) -> tuple[float, int]:
    boxes = text_boxes(frame, min_conf)
    covered = np.zeros(frame.shape[:2], dtype=bool)
    for left, top, w, h in boxes:
        covered[top : top + h, left : left + w] = True
    return float(covered.mean()), len(boxes)


class OcrScorer(Stage):
    name = "ocr"
    columns = ("ocr", "ocr_boxes")

    def __init__(self, frame: int = 10, min_conf: float = 60.0):
        self.frame, self.min_conf = frame, min_conf

    def check(self) -> None:
        if shutil.which("tesseract") is None:
            raise OspError("the ocr scorer needs the tesseract program: "
                           "apt-get install tesseract-ocr tesseract-ocr-eng")

    def process(self, row: dict) -> dict:
        index = min(self.frame, frame_count(row) - 1)
        ratio, count = text_area_ratio(frames_at(row["path"], [index])[0], self.min_conf)
        return {"ocr": ratio, "ocr_boxes": count}
