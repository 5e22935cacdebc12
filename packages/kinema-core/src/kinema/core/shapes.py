"""Synthetic moving shapes: vocabulary, renderer and analyser, shared by kinema-data (``kinema data synth``
writes the set), kinema-sample (``kinema eval adherence``) and kinema-train (the in-memory synthetic source).

Every clip is one coloured shape moving on black, drawn from a ``SyntheticVideoSpec`` (colour, shape,
direction, speed, size, start) and captioned in one of many phrasings: ``PHRASINGS["train"]`` words the
synthetic set, ``PHRASINGS["held-out"]`` (no template or synonym in common) words prompts that test unseen
wording. ``analyse(frames)`` recovers the attributes from the pixels alone, so it can judge whether generated
videos follow their prompts; it is built for noisy, blurry input: nearest named colour (brightness-normalised),
shape from how much of its bounding box the shape fills, direction and speed from the centroid trajectory.

Everything is deterministic by seed. Sizes are small (32-64 px, 8-16 frames) on purpose: tiny models train on
this set on a CPU. Only the standard library and numpy are imported (no pandas, torch or OpenCV).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np

from .errors import KinemaError

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

@dataclass(frozen=True)
class Phrasings:
    """One pool of caption wording. Captions are drawn from a pool's templates filled with its words; the
    ``train`` and ``held-out`` pools share no template or synonym, so prompts phrased from ``held-out``
    measure how a model trained on ``train`` captions copes with wording it has never seen."""

    templates: tuple[str, ...]  # fields: det size colour shape verb verbing direction speed background
    verbs: tuple[str, ...]  # "slides"
    participles: tuple[str, ...]  # "sliding"
    directions: dict[str, tuple[str, ...]]
    speeds: dict[str, tuple[str, ...]]
    sizes: dict[str, tuple[str, ...]]
    backgrounds: tuple[str, ...]


PHRASINGS = {
    "train": Phrasings(
        templates=(
            "{det} {size} {colour} {shape} {verb} {direction} {speed} {background}",
            "{det} {size} {colour} {shape} {verb} {speed} {direction} {background}",
            "{speed}, {det} {colour} {shape} {verb} {direction} {background}",
            "the {colour} {shape} is {size} and {verb} {direction} {speed}",
            "{size} {colour} {shape} {verbing} {direction}, {speed}",
            "{det} {colour} {shape} {verb} {direction} {background}",
            "{colour} {shape}, {verbing} {direction}",
            "{direction}, {det} {colour} {shape} {verb} {background}",
            "{verbing} {direction} {background}: {det} {size} {colour} {shape}",
        ),
        verbs=("moves", "drifts", "travels", "slides", "glides", "heads", "goes"),
        participles=("moving", "drifting", "travelling", "sliding", "gliding", "heading", "going"),
        directions={
            "left": ("to the left", "leftward", "towards the left", "left"),
            "right": ("to the right", "rightward", "towards the right", "right"),
            "up": ("upward", "up", "towards the top"),
            "down": ("downward", "down", "towards the bottom"),
        },
        speeds={"slow": ("slowly", "gently", "at a slow pace"), "fast": ("quickly", "fast", "rapidly")},
        sizes={"small": ("small", "little", "tiny"), "large": ("large", "big")},
        backgrounds=("on a black background", "across a dark screen", "on black", "against a black backdrop"),
    ),
    "held-out": Phrasings(
        templates=(
            "{det} {colour} {shape} that {verb} {direction} {speed}",
            "{direction} {verb} {det} {size} {colour} {shape} {background}",
            "{det} {colour} {shape}, {size}, {verbing} {direction} {speed}",
            "{det} {size} {colour} {shape} on its way {direction} {background}",
        ),
        verbs=("shifts", "floats", "wanders", "scoots"),
        participles=("shifting", "floating", "wandering", "scooting"),
        directions={
            "left": ("leftwards", "toward the left edge"),
            "right": ("rightwards", "toward the right edge"),
            "up": ("upwards", "toward the top edge"),
            "down": ("downwards", "toward the bottom edge"),
        },
        speeds={"slow": ("leisurely", "unhurriedly"), "fast": ("swiftly", "at high speed")},
        sizes={"small": ("miniature", "petite"), "large": ("huge", "giant")},
        backgrounds=("in front of a dark void", "through an empty black frame"),
    ),
}
# shared by both pools: they vary the surface of a caption, not its words
_DETERMINERS = ("a", "the", "")
_ENDINGS = (".", "")


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


def caption(spec: SyntheticVideoSpec, rng: random.Random, phrasings: str = "train") -> str:
    """A caption naming the spec's colour, shape and direction (and, in most templates, speed and size) once
    each, worded from the ``train`` or ``held-out`` pool of ``PHRASINGS``; the same rng state gives the same
    caption."""
    if phrasings not in PHRASINGS:
        raise KinemaError(f"unknown phrasings {phrasings!r}; choose {', '.join(PHRASINGS)}")
    pool = PHRASINGS[phrasings]
    background = rng.choice(pool.backgrounds) if rng.random() < 0.5 else ""
    text = rng.choice(pool.templates).format(
        det=rng.choice(_DETERMINERS), size=rng.choice(pool.sizes[spec.size]), colour=spec.colour, shape=spec.shape,
        verb=rng.choice(pool.verbs), verbing=rng.choice(pool.participles),
        direction=rng.choice(pool.directions[spec.direction]), speed=rng.choice(pool.speeds[spec.speed]),
        background=background)
    text = re.sub(r" ([,:])", r"\1", " ".join(text.split()))  # empty fields leave doubled or stray spaces
    text = re.sub(r"\b([aA]) (?=[aeiou])", r"\1n ", text)  # "a orange" -> "an orange"
    first = text[0].upper() if rng.random() < 0.5 else text[0].lower()
    return first + text[1:] + rng.choice(_ENDINGS)


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


# OpenCV's 7-tap kernel for GaussianBlur(sigma=0.7) (cv2.getGaussianKernel(7, 0.7, CV_64F), bit for bit)
_BLUR_KERNEL = tuple(float.fromhex(h) for h in (
    "0x1.eaf0abfddfc5cp-15", "0x1.3b3170a27df79p-7", "0x1.a4a892b55c7f0p-3", "0x1.23c2d39adde1dp-1",
    "0x1.a4a892b55c7f0p-3", "0x1.3b3170a27df79p-7", "0x1.eaf0abfddfc5cp-15"))


def _gaussian_blur(image: np.ndarray) -> np.ndarray:
    """``cv2.GaussianBlur(image, (0, 0), 0.7)`` of a 2-D float64 array (border reflected without repeating the
    edge, OpenCV's default), as rows then columns; equal to OpenCV's up to rounding in the last bit."""
    k, half = _BLUR_KERNEL, len(_BLUR_KERNEL) // 2
    height, width = image.shape
    padded = np.pad(image, ((0, 0), (half, half)), mode="reflect")
    rows = k[0] * padded[:, :width]
    for i in range(1, len(k)):
        rows = rows + k[i] * padded[:, i:i + width]
    padded = np.pad(rows, ((half, half), (0, 0)), mode="reflect")
    out = k[half] * padded[half:half + height]
    for i in range(1, half + 1):
        out = out + k[half + i] * (padded[half + i:half + i + height] + padded[half - i:half - i + height])
    return out


def _largest_blob(mask: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of a boolean mask (None if it is empty). Equal areas go to the component
    met first scanning 2x2 blocks in raster order, the order of OpenCV's connectedComponentsWithStats."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    height, width = mask.shape
    size = height * width
    # each pixel's label is the smallest flat index in its component: spread the minimum over the
    # 8 neighbours, then follow labels to their labels' labels, until nothing changes
    labels = np.where(mask, np.arange(size).reshape(height, width), size)
    while True:
        padded = np.pad(labels, 1, constant_values=size)
        spread = labels
        for dy in range(3):
            for dx in range(3):
                spread = np.minimum(spread, padded[dy:dy + height, dx:dx + width])
        spread = np.where(mask, spread, size).ravel()
        lookup = np.append(spread, size)
        while True:
            jumped = lookup[spread]
            if np.array_equal(jumped, spread):
                break
            spread = jumped
            lookup[:size] = spread
        spread = spread.reshape(height, width)
        if np.array_equal(spread, labels):
            break
        labels = spread
    ys, xs = np.nonzero(mask)
    roots, members = np.unique(labels[ys, xs], return_inverse=True)
    areas = np.bincount(members)
    first_block = np.full(len(roots), size, dtype=np.int64)
    np.minimum.at(first_block, members, (ys // 2) * ((width + 1) // 2) + xs // 2)
    largest = np.flatnonzero(areas == areas.max())
    return labels == roots[largest[np.argmin(first_block[largest])]]


def analyse(frames) -> dict:
    """Recover {colour, shape, direction, speed, size} (and measurements) from uint8 [T, H, W, 3] frames."""
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
            diff = _gaussian_blur(diff)
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
