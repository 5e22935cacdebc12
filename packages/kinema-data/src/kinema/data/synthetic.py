"""Synthetic text-video set with known ground truth: one coloured shape moving on black.

The vocabulary, the renderer and the analyser that reads a clip's attributes back from its pixels live in
``kinema.core.shapes`` (shared with kinema-sample and kinema-train); this module draws the set as a table
(``make_dataset``) and writes it to disk (``write_dataset``, behind ``kinema data synth``).

Everything is deterministic by seed.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from kinema.core import KinemaError
from kinema.core.shapes import COLOURS, DIRECTIONS, FPS, SHAPES, caption, parse_combinations, random_spec, render


def make_dataset(n: int, seed: int = 0, num_frames: int = 16, height: int = 32, width: int = 32, exclude=()):
    """(table, clips): table rows hold the caption and ground truth; clips[i] is uint8 [T, H, W, 3].

    ``exclude``: colour:shape:direction combinations never drawn (held out to test generalisation).
    """
    excluded = parse_combinations(exclude)
    if len(excluded) >= len(COLOURS) * len(SHAPES) * len(DIRECTIONS):
        raise KinemaError("exclude leaves no colour:shape:direction combination to draw")
    rows, clips = [], []
    for i in range(n):
        rng = random.Random(f"{seed}-{i}")  # each sample on its own stream: sample i is the same for any n
        spec = random_spec(rng, num_frames, height, width)
        while (spec.colour, spec.shape, spec.direction) in excluded:  # redraw from the same stream
            spec = random_spec(rng, num_frames, height, width)
        clips.append(render(spec))
        truth = asdict(spec)
        truth["start_x"], truth["start_y"] = truth.pop("start")
        rows.append({"text": caption(spec, rng), **truth})
    return pd.DataFrame(rows), clips


def write_dataset(n: int, output_dir: str | os.PathLike, seed: int = 0, size: int = 32, num_frames: int = 16,
                  ext: str = "mp4", exclude=()) -> Path:
    """Write clips and ``meta.csv`` (Open-Sora columns + ground truth); returns the table's path."""
    from kinema.core.video import write_video

    from .table import write_table

    output_dir = Path(output_dir)
    table, clips = make_dataset(n, seed, num_frames, size, size, exclude=exclude)
    paths = []
    for i, frames in enumerate(clips):
        path = output_dir / f"synth_{i:06d}.{ext}"
        write_video(path, frames, FPS)
        paths.append(str(path.resolve()))
    table.insert(0, "path", paths)
    table["fps"] = FPS
    table["aspect_ratio"] = table["height"] / table["width"]
    table["resolution"] = table["height"] * table["width"]
    return write_table(table, output_dir / "meta.csv")
