"""Synthetic text-video set with known ground truth: one coloured shape moving on black.

The vocabulary, the renderer and the analyser that reads a clip's attributes back from its pixels live in
``kinema.core.shapes`` (shared with kinema-sample and kinema-train); this module draws the set as a table
(``make_dataset``) and writes it to disk (``write_dataset``, behind ``kinema data synth``).

Everything is deterministic by seed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from kinema.core import KinemaError
from kinema.core.shapes import COLOURS, DIRECTIONS, FPS, SHAPES, caption, parse_combinations, random_spec, render
from kinema.core.validate import check_number


MAX_VIDEOS = 1_000_000
MAX_SIZE = 1024  # px; one clip is held in memory while it is written
MAX_FRAMES = 1024


def _excluded(exclude, shapes) -> frozenset[tuple[str, str, str]]:
    """The combinations never drawn: those excluded, and every one of a shape not in ``shapes`` (None: all)."""
    unknown = sorted(set(shapes or ()) - set(SHAPES))
    if unknown:
        raise KinemaError(f"unknown shape {unknown[0]!r} for --shape; choose from {', '.join(SHAPES)}")
    left_out = [s for s in SHAPES if shapes and s not in shapes]
    excluded = set(parse_combinations(exclude)) | {(c, s, d) for c in COLOURS for s in left_out for d in DIRECTIONS}
    if len(excluded) >= len(COLOURS) * len(SHAPES) * len(DIRECTIONS):
        raise KinemaError("exclude leaves no colour:shape:direction combination to draw")
    return frozenset(excluded)


def _samples(n: int, seed: int, num_frames: int, height: int, width: int, exclude,
             shapes=None) -> Iterator[tuple[dict, object]]:
    """(row, clip) for samples 0..n-1, drawn one at a time so a large set never sits in memory."""
    # other shapes are left out as excluded combinations are, redrawn from the sample's own stream: sample i of a
    # one-shape set is sample i of the full set wherever that one drew the shape
    excluded = _excluded(exclude, shapes)
    for i in range(n):
        rng = random.Random(f"{seed}-{i}")  # each sample on its own stream: sample i is the same for any n
        spec = random_spec(rng, num_frames, height, width)
        while (spec.colour, spec.shape, spec.direction) in excluded:  # redraw from the same stream
            spec = random_spec(rng, num_frames, height, width)
        truth = asdict(spec)
        truth["start_x"], truth["start_y"] = truth.pop("start")
        # only the training phrasings: the held-out ones stay unseen for `kinema eval adherence --phrasing varied`
        yield {"text": caption(spec, rng, phrasings="train"), **truth}, render(spec)


def make_dataset(n: int, seed: int = 0, num_frames: int = 16, height: int = 32, width: int = 32, exclude=(),
                 shapes=None):
    """(table, clips): table rows hold the caption and ground truth; clips[i] is uint8 [T, H, W, 3].

    ``exclude``: colour:shape:direction combinations never drawn (held out to test generalisation).
    ``shapes``: draw only these shapes (None: all), e.g. to add examples of the shape a model finds hardest.
    """
    rows, clips = [], []
    for row, clip in _samples(n, seed, num_frames, height, width, exclude, shapes):
        rows.append(row)
        clips.append(clip)
    return pd.DataFrame(rows), clips


def write_dataset(n: int, output_dir: str | os.PathLike, seed: int = 0, size: int = 32, num_frames: int = 16,
                  ext: str = "mp4", exclude=(), shapes=None, progress: bool = False) -> Path:
    """Write clips and ``meta.csv`` (Open-Sora columns + ground truth); returns the table's path."""
    from kinema.core.video import write_video

    from kinema.core.progress import progress_bar
    from .table import write_table

    n = check_number(n, "num_videos", minimum=1, maximum=MAX_VIDEOS, integer=True, fix="write -n 100, say")
    size = check_number(size, "size", minimum=16, maximum=MAX_SIZE, integer=True, fix="frames are size x size px")
    num_frames = check_number(num_frames, "frames", minimum=2, maximum=MAX_FRAMES, integer=True)
    output_dir = Path(output_dir)
    rows, paths = [], []
    samples = _samples(n, seed, num_frames, size, size, exclude, shapes)
    for i, (row, frames) in enumerate(progress_bar(samples, total=n, desc="synth", unit="clip", enabled=progress)):
        path = output_dir / f"synth_{i:06d}.{ext}"
        write_video(path, frames, FPS)
        rows.append(row)
        paths.append(str(path.resolve()))
    table = pd.DataFrame(rows)
    table.insert(0, "path", paths)
    table["fps"] = FPS
    table["aspect_ratio"] = table["height"] / table["width"]
    table["resolution"] = table["height"] * table["width"]
    return write_table(table, output_dir / "meta.csv")
