from __future__ import annotations

import random

import numpy as np
import pytest

from kinema.core import KinemaError
from kinema.core.shapes import (
    COLOURS,
    DIRECTIONS,
    EXTENT,
    SHAPES,
    SyntheticVideoSpec,
    _largest_blob,
    analyse,
    caption,
    centre_at,
    nearest_colour,
    parse_combinations,
    random_spec,
    render,
)

ATTRIBUTES = ("colour", "shape", "direction", "speed", "size")


def _clips(n: int, seed: int, num_frames: int = 16, height: int = 32, width: int = 32):
    """(spec, clip) pairs drawn as kinema-data's make_dataset draws them: sample i on its own stream."""
    for i in range(n):
        spec = random_spec(random.Random(f"{seed}-{i}"), num_frames, height, width)
        yield spec, render(spec)


def _accuracy(pairs, transform=lambda c: c) -> dict[str, float]:
    hits, count = {k: 0 for k in ATTRIBUTES}, 0
    for spec, clip in pairs:
        found = analyse(transform(clip))
        count += 1
        for k in ATTRIBUTES:
            hits[k] += found[k] == getattr(spec, k)
    return {k: v / count for k, v in hits.items()}


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of uint8 [T, H, W, 3] over H and W (7 taps, mirrored border), rounded back to uint8."""
    x = np.arange(-3, 4)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = frames.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (3, 3)
        padded = np.pad(out, pad, mode="reflect")
        length = out.shape[axis]
        out = sum(k * np.take(padded, range(i, i + length), axis=axis) for i, k in enumerate(kernel))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size, frames", [(32, 16), (64, 8)])
def test_analyser_recovers_ground_truth(size, frames):
    accuracy = _accuracy(_clips(150, seed=11, num_frames=frames, height=size, width=size))
    assert min(accuracy[k] for k in ("colour", "shape", "direction")) >= 0.99, accuracy
    assert min(accuracy[k] for k in ("speed", "size")) >= 0.97, accuracy


def test_analyser_survives_noise_and_blur():
    rng = np.random.default_rng(0)

    def degrade(clip):
        blurred = _blur(clip, 0.8).astype(np.float64)
        return np.clip(blurred + rng.normal(0, 10, clip.shape), 0, 255).astype(np.uint8)

    accuracy = _accuracy(_clips(150, seed=12), degrade)
    assert min(accuracy[k] for k in ("colour", "direction")) >= 0.97, accuracy
    assert accuracy["shape"] >= 0.9, accuracy  # small shapes lose corners to blur + noise


def test_every_combination_renders_and_is_recognised():
    for colour in COLOURS:
        for shape in SHAPES:
            for direction in DIRECTIONS:
                spec = SyntheticVideoSpec(colour, shape, direction, "fast", "large", (0.5, 0.5), 12, 48, 48)
                spec = SyntheticVideoSpec(**{**spec.__dict__, "start": _centred_start(direction)})
                found = analyse(render(spec))
                assert (found["colour"], found["shape"], found["direction"]) == (colour, shape, direction)


def _centred_start(direction):
    return {"left": (0.75, 0.5), "right": (0.25, 0.5), "up": (0.5, 0.75), "down": (0.5, 0.25)}[direction]


def test_empty_video_is_reported_not_guessed():
    assert analyse(np.zeros((8, 32, 32, 3), np.uint8))["found"] is False
    assert nearest_colour((100, 100, 100)) == "white" and nearest_colour((120, 10, 10)) == "red"
    with pytest.raises(KinemaError, match="unknown colour"):
        SyntheticVideoSpec("pink", "circle", "left", "slow", "small", (0.5, 0.5))


def test_random_spec_keeps_the_shape_inside_the_frame():
    rng = random.Random(0)
    for _ in range(200):
        spec = random_spec(rng, 16, 32, 32)
        radius = EXTENT[spec.size] * 32 / 2
        for t in (0, 15):
            x, y = centre_at(spec, t)
            assert radius <= x <= 32 - radius and radius <= y <= 32 - radius


def test_render_and_caption_are_deterministic_by_stream():
    spec = random_spec(random.Random("4-0"))
    clip = render(spec)
    assert clip.dtype == np.uint8 and clip.shape == (16, 32, 32, 3)
    assert np.array_equal(clip, render(random_spec(random.Random("4-0"))))
    text = caption(spec, random.Random(1))
    assert text == caption(spec, random.Random(1)) and spec.colour in text and spec.shape in text


def test_combinations_are_parsed_and_checked():
    assert parse_combinations(["red:circle:left", " blue : square : up "]) == {("red", "circle", "left"),
                                                                               ("blue", "square", "up")}
    assert parse_combinations(None) == frozenset()
    with pytest.raises(KinemaError, match="unknown shape 'star'"):
        parse_combinations(["red:star:left"])
    with pytest.raises(KinemaError, match="colour:shape:direction"):
        parse_combinations(["red:circle"])


def test_largest_blob_is_8_connected_and_ties_go_to_the_first_block():
    assert _largest_blob(np.zeros((5, 5), bool)) is None
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one diagonal component of 3
    mask[4:6, 5:8] = True  # a block of 6
    assert np.array_equal(_largest_blob(mask), np.pad(np.ones((2, 3), bool), ((4, 0), (5, 0))))
    # equal areas: the component whose first 2x2 block comes first in raster order wins, as in OpenCV
    mask = np.zeros((4, 8), bool)
    mask[0, 6] = mask[1, 0] = True
    assert np.array_equal(np.argwhere(_largest_blob(mask)), [[1, 0]])
    # a U shape is one component even though its arms first look separate
    mask = np.zeros((5, 5), bool)
    mask[:, 0] = mask[:, 4] = mask[4, :] = True
    assert np.array_equal(_largest_blob(mask), mask)
