"""Synthetic text-video set with known ground truth: one coloured shape moving on black.

Every clip is drawn from a ``SyntheticVideoSpec`` (colour, shape, direction, speed, size, start)
and captioned in one of several phrasings. ``analyse(frames)`` recovers the attributes from the
pixels alone, so it can later judge whether generated videos follow their prompts; it is built
for noisy, blurry input: nearest named colour (brightness-normalised), shape from how much of
its bounding box the shape fills, direction and speed from the centroid trajectory.

Everything is deterministic by seed. Sizes are small (32-64 px, 8-16 frames) on purpose: tiny
models train on this set on a CPU.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kinema.core import KinemaError

# ----------------------------------------------------------------------------- vocabulary

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (235, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 230, 40),
    "green": (40, 200, 60),
    "cyan": (40, 210, 230),
    "blue": (40, 70, 235),
    "purple": (150, 60, 230),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slow", "fast")
SIZES = ("small", "large")

# fraction of the frame's shorter side: travel over the clip by speed, shape extent by size
TRAVEL = {"slow": 0.25, "fast": 0.5}
EXTENT = {"small": 0.25, "large": 0.4}
VECTORS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
BACKGROUND = (0, 0, 0)
FPS = 8.0

_DIRECTION_WORDS = {
    "left": ("to the left", "leftward", "towards the left"),
    "right": ("to the right", "rightward", "towards the right"),
    "up": ("upward", "up", "towards the top"),
    "down": ("downward", "down", "towards the bottom"),
}
_SPEED_WORDS = {"slow": ("slowly", "gently", "at a slow pace"), "fast": ("quickly", "fast", "rapidly")}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_VERBS = ("moves", "drifts", "travels", "slides", "glides")
_TEMPLATES = (
    "a {size} {colour} {shape} {verb} {direction} {speed}",
    "A {size} {colour} {shape} {verb} {speed} {direction}.",
    "{speed_cap}, a {colour} {shape} {verb} {direction} on a black background",
    "The {colour} {shape} is {size} and {verb} {direction} {speed}.",
    "{size_cap} {colour} {shape} moving {direction}, {speed}",
)


@dataclass(frozen=True)
class SyntheticVideoSpec:
    colour: str
    shape: str
    direction: str
    speed: str
    size: str
    start: tuple[float, float]  # centre at frame 0, as fractions of (width, height)
    num_frames: int = 16
    height: int = 32
    width: int = 32

    def __post_init__(self):
        for value, allowed, what in ((self.colour, COLOURS, "colour"), (self.shape, SHAPES, "shape"),
                                     (self.direction, DIRECTIONS, "direction"), (self.speed, SPEEDS, "speed"),
                                     (self.size, SIZES, "size")):
            if value not in allowed:
                raise KinemaError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")
        if self.num_frames < 2 or min(self.height, self.width) < 16:
            raise KinemaError("synthetic clips need >= 2 frames and sides >= 16 px")


def random_spec(rng: random.Random, num_frames: int = 16, height: int = 32, width: int = 32) -> SyntheticVideoSpec:
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    direction, speed, size = rng.choice(DIRECTIONS), rng.choice(SPEEDS), rng.choice(SIZES)
    side = min(height, width)
    half = EXTENT[size] * side / 2 + 1
    travel = TRAVEL[speed] * side
    dx, dy = VECTORS[direction]
    # start so the whole shape stays in frame for the whole clip
    def axis(extent: int, step: int) -> float:
        lo, hi = half + max(0.0, -step * travel), extent - half - max(0.0, step * travel)
        return rng.uniform(lo, hi) / extent

    start = (axis(width, dx), axis(height, dy))
    return SyntheticVideoSpec(colour, shape, direction, speed, size, start, num_frames, height, width)


# ----------------------------------------------------------------------------- rendering


def _coverage(shape: str, cx: float, cy: float, radius: float, height: int, width: int, supersample: int = 4):
    """Anti-aliased coverage [H, W] in [0, 1] (pixel centres at integer + 0.5)."""
    offsets = (np.arange(supersample) + 0.5) / supersample
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)[:, None]
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)[None, :]
    if shape == "circle":
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    elif shape == "square":
        inside = (np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius)
    else:  # triangle pointing up: apex at the top, base at the bottom of its box
        rel = (ys - (cy - radius)) / (2 * radius)
        inside = (rel >= 0) & (rel <= 1) & (np.abs(xs - cx) <= radius * rel)
    return inside.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


def centre_at(spec: SyntheticVideoSpec, t: int) -> tuple[float, float]:
    side = min(spec.height, spec.width)
    progress = t / (spec.num_frames - 1)
    dx, dy = VECTORS[spec.direction]
    travel = TRAVEL[spec.speed] * side
    return spec.start[0] * spec.width + dx * travel * progress, spec.start[1] * spec.height + dy * travel * progress


def render(spec: SyntheticVideoSpec) -> np.ndarray:
    """uint8 [T, H, W, 3]."""
    radius = EXTENT[spec.size] * min(spec.height, spec.width) / 2
    colour = np.array(COLOURS[spec.colour], dtype=np.float32)
    background = np.array(BACKGROUND, dtype=np.float32)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for t in range(spec.num_frames):
        cx, cy = centre_at(spec, t)
        alpha = _coverage(spec.shape, cx, cy, radius, spec.height, spec.width)[..., None]
        frames[t] = np.round(alpha * colour + (1 - alpha) * background).astype(np.uint8)
    return frames


def caption(spec: SyntheticVideoSpec, rng: random.Random) -> str:
    speed, size = rng.choice(_SPEED_WORDS[spec.speed]), rng.choice(_SIZE_WORDS[spec.size])
    return rng.choice(_TEMPLATES).format(
        size=size, size_cap=size.capitalize(), colour=spec.colour, shape=spec.shape, verb=rng.choice(_VERBS),
        direction=rng.choice(_DIRECTION_WORDS[spec.direction]), speed=speed, speed_cap=speed.capitalize(),
    )


def parse_combinations(items) -> frozenset[tuple[str, str, str]]:
    """``["red:circle:left", ...]`` -> {(colour, shape, direction), ...}; unknown words are an error."""
    combos = set()
    for item in items or ():
        parts = tuple(p.strip() for p in str(item).split(":"))
        if len(parts) != 3:
            raise KinemaError(f"combination {item!r} must look like colour:shape:direction, e.g. red:circle:left")
        for value, allowed, what in zip(parts, (COLOURS, SHAPES, DIRECTIONS), ("colour", "shape", "direction")):
            if value not in allowed:
                raise KinemaError(f"combination {item!r}: unknown {what} {value!r}; choose from {', '.join(allowed)}")
        combos.add(parts)
    return frozenset(combos)


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


# ----------------------------------------------------------------------------- analysis

_UNIT_COLOURS = {name: np.array(rgb, dtype=np.float64) / max(rgb) for name, rgb in COLOURS.items()}


def nearest_colour(rgb) -> str:
    """Named colour nearest in chromaticity (colour / its brightest channel): blur and dimming don't matter."""
    rgb = np.asarray(rgb, dtype=np.float64)
    unit = rgb / max(rgb.max(), 1e-6)
    return min(_UNIT_COLOURS, key=lambda name: float(np.sum((_UNIT_COLOURS[name] - unit) ** 2)))


def shape_from_measures(fill: float, top_bottom: float) -> str:
    """A square fills its bounding box (1.0), a circle pi/4, an upright triangle 1/2; the triangle is
    also the only shape with less mass in its top half than its bottom half (1:3), which survives blur."""
    if top_bottom < 0.6 or fill < 0.6:
        return "triangle"
    return "square" if fill >= 0.9 else "circle"


def _largest_blob(mask: np.ndarray) -> np.ndarray | None:
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def analyse(frames) -> dict:
    """Recover {colour, shape, direction, speed, size} (and measurements) from uint8 [T, H, W, 3] frames."""
    import cv2

    video = np.asarray(frames.numpy() if hasattr(frames, "numpy") else frames, dtype=np.float64)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise KinemaError(f"analyse expects frames [T, H, W, 3], got {video.shape}")
    t_count, height, width, _ = video.shape
    centres, fills, extents, colours, top_bottoms = [], [], [], [], []
    for frame in video:
        border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
        background = np.median(border, axis=0)
        diff = np.abs(frame - background).max(axis=-1)
        if diff.max() < 40:  # nothing stands out in this frame
            continue
        if np.abs(border - background).mean() > 3:  # visibly noisy: smooth before measuring the shape
            diff = cv2.GaussianBlur(diff, (0, 0), 0.7)
        blob = _largest_blob(diff > 0.5 * diff.max())
        if blob is None:
            continue
        ys, xs = np.nonzero(blob)
        weights = diff[blob]
        centres.append((float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())))
        box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        fills.append(blob.sum() / box)
        middle = (ys.min() + ys.max()) / 2
        top, bottom = weights[ys < middle].sum(), weights[ys > middle].sum()
        top_bottoms.append(top / max(bottom, 1e-6))
        extents.append(np.sqrt(box))
        core = diff > 0.75 * diff.max()
        colours.append(np.median(frame[core & blob] if (core & blob).any() else frame[blob], axis=0))
    if len(centres) < 2:
        return {"found": False, "colour": None, "shape": None, "direction": None, "speed": None, "size": None}
    centres_arr = np.array(centres)
    steps = np.arange(len(centres_arr))
    slope_x, slope_y = (np.polyfit(steps, centres_arr[:, k], 1)[0] for k in (0, 1))
    # fitted displacement over the whole clip (frames without the shape are not counted in steps)
    scale = (t_count - 1) / max(1, len(centres_arr) - 1)
    dx, dy = slope_x * (len(centres_arr) - 1) * scale, slope_y * (len(centres_arr) - 1) * scale
    if abs(dx) >= abs(dy):
        direction = "right" if dx > 0 else "left"
    else:
        direction = "down" if dy > 0 else "up"
    side = min(height, width)
    travel = float(np.hypot(dx, dy)) / side
    extent = float(np.median(extents)) / side
    fill = float(np.median(fills))
    return {
        "found": True,
        "colour": nearest_colour(np.median(np.array(colours), axis=0)),
        "shape": shape_from_measures(fill, float(np.median(top_bottoms))),
        "direction": direction,
        "speed": "fast" if travel > (TRAVEL["slow"] + TRAVEL["fast"]) / 2 else "slow",
        "size": "large" if extent > (EXTENT["small"] + EXTENT["large"]) / 2 else "small",
        "displacement": (float(dx), float(dy)),
        "fill": fill,
        "top_bottom": float(np.median(top_bottoms)),
        "extent": extent,
    }
