"""Text score (column ``ocr``): fraction of the frame covered by words Tesseract finds.

Upstream counts DBNet++ boxes on frame 10; here Tesseract (via pytesseract) finds word boxes
and the score is their total area over the frame area, so videos of any size compare.
``ocr_boxes`` keeps the word count.

Video frames are scenes with a few words on them, not pages: Tesseract's default page layout
often finds no text block in them at all, and any single layout mode misses some captions.
So two passes are combined: sparse text (``--psm 11``) on the colour frame and one uniform
block (``--psm 6``) on its grey version. Both read texture as low-confidence scraps ("Ly",
"\\", "4"), so a word counts only when Tesseract is at least ``min_conf`` sure of it and it
holds at least two letters or digits.
"""

from __future__ import annotations

import shutil

import numpy as np

from kinema.core import KinemaError

from ..frames import frame_count, frames_at
from ..stage import Stage

DEFAULT_MIN_CONF = 85.0
Box = tuple[int, int, int, int]  # left, top, width, height


def _is_word(text: str) -> bool:
    return sum(ch.isalnum() for ch in text) >= 2


def _words(image: np.ndarray, layout: str, min_conf: float) -> list[Box]:
    import pytesseract

    data = pytesseract.image_to_data(image, config=layout, output_type=pytesseract.Output.DICT)
    return [(int(left), int(top), int(w), int(h))
            for text, conf, left, top, w, h in zip(data["text"], data["conf"], data["left"], data["top"],
                                                   data["width"], data["height"])
            if _is_word(str(text)) and float(conf) >= min_conf]


def text_box_passes(frame: np.ndarray, min_conf: float = DEFAULT_MIN_CONF) -> list[list[Box]]:
    """Word boxes from each pass: sparse text on the RGB frame, one text block on its grey version."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return [_words(frame, "--psm 11", min_conf), _words(grey, "--psm 6", min_conf)]


def text_area_ratio(frame: np.ndarray, min_conf: float = DEFAULT_MIN_CONF) -> tuple[float, int]:
    """(fraction of the frame under word boxes of either pass, words found by the pass that found more)."""
    passes = text_box_passes(frame, min_conf)
    covered = np.zeros(frame.shape[:2], dtype=bool)
    for left, top, w, h in (box for boxes in passes for box in boxes):
        covered[top : top + h, left : left + w] = True
    return float(covered.mean()), max(len(boxes) for boxes in passes)


class OcrScorer(Stage):
    name = "ocr"
    columns = ("ocr", "ocr_boxes")

    def __init__(self, frame: int = 10, min_conf: float = DEFAULT_MIN_CONF):
        self.frame, self.min_conf = frame, min_conf

    def check(self) -> None:
        if shutil.which("tesseract") is None:
            raise KinemaError("the ocr scorer needs the tesseract program: "
                           "apt-get install tesseract-ocr tesseract-ocr-eng")

    def process(self, row: dict) -> dict:
        index = min(self.frame, frame_count(row) - 1)
        ratio, count = text_area_ratio(frames_at(row["path"], [index])[0], self.min_conf)
        return {"ocr": ratio, "ocr_boxes": count}
