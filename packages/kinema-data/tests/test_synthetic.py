from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from kinema.core import KinemaError
from kinema.core.video import read_video
from kinema.data.synthetic import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    SyntheticVideoSpec,
    analyse,
    make_dataset,
    nearest_colour,
    render,
)

ATTRIBUTES = ("colour", "shape", "direction", "speed", "size")


def _accuracy(table: pd.DataFrame, clips, transform=lambda c: c) -> dict[str, float]:
    hits = {k: 0 for k in ATTRIBUTES}
    for row, clip in zip(table.to_dict("records"), clips):
        found = analyse(transform(clip))
        for k in ATTRIBUTES:
            hits[k] += found[k] == row[k]
    return {k: v / len(table) for k, v in hits.items()}


def test_deterministic_by_seed_and_independent_of_set_size():
    table_a, clips_a = make_dataset(12, seed=4)
    table_b, clips_b = make_dataset(20, seed=4)
    pd.testing.assert_frame_equal(table_a, table_b.iloc[:12])
    assert all(np.array_equal(a, b) for a, b in zip(clips_a, clips_b))
    table_c, _ = make_dataset(12, seed=5)
    assert not table_a.equals(table_c)
    assert clips_a[0].dtype == np.uint8 and clips_a[0].shape == (16, 32, 32, 3)


def test_captions_name_the_attributes_in_several_phrasings():
    table, _ = make_dataset(60, seed=0)
    for row in table.to_dict("records"):
        assert row["colour"] in row["text"] and row["shape"] in row["text"]
    openings = {text.split()[0].lower() for text in table["text"]}
    assert len(openings) >= 3


@pytest.mark.parametrize("size, frames", [(32, 16), (64, 8)])
def test_analyser_recovers_ground_truth(size, frames):
    table, clips = make_dataset(150, seed=11, num_frames=frames, height=size, width=size)
    accuracy = _accuracy(table, clips)
    assert min(accuracy[k] for k in ("colour", "shape", "direction")) >= 0.99, accuracy
    assert min(accuracy[k] for k in ("speed", "size")) >= 0.97, accuracy


def test_analyser_survives_noise_and_blur():
    import cv2

    rng = np.random.default_rng(0)

    def degrade(clip):
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 0.8) for f in clip]).astype(np.float64)
        return np.clip(blurred + rng.normal(0, 10, clip.shape), 0, 255).astype(np.uint8)

    table, clips = make_dataset(150, seed=12)
    accuracy = _accuracy(table, clips, degrade)
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


def test_synth_command_writes_clips_and_table(tmp_path, kinema_cli):
    result = kinema_cli("data", "synth", "-n", 6, "-o", tmp_path, "--seed", 3, "--size", 32, "--frames", 8)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "meta.csv")
    assert len(table) == 6
    for column in ("path", "text", "num_frames", "height", "width", "fps", "colour", "shape", "direction"):
        assert column in table.columns
    hits = 0
    for row in table.to_dict("records"):
        found = analyse(read_video(row["path"]).frames)
        hits += (found["colour"], found["shape"], found["direction"]) == (row["colour"], row["shape"],
                                                                          row["direction"])
    assert hits == 6  # survives h264


def test_random_spec_keeps_the_shape_inside_the_frame():
    from kinema.data.synthetic import EXTENT, centre_at, random_spec

    rng = random.Random(0)
    for _ in range(200):
        spec = random_spec(rng, 16, 32, 32)
        radius = EXTENT[spec.size] * 32 / 2
        for t in (0, 15):
            x, y = centre_at(spec, t)
            assert radius <= x <= 32 - radius and radius <= y <= 32 - radius


def test_excluded_combinations_are_never_drawn_and_others_are_unchanged(kinema_cli, tmp_path):
    held = ["red:circle:left", "blue:square:up", "white:triangle:down"]
    plain, _ = make_dataset(300, seed=7, num_frames=4)
    table, _ = make_dataset(300, seed=7, num_frames=4, exclude=held)
    combos = set(zip(table["colour"], table["shape"], table["direction"]))
    assert not combos & {tuple(h.split(":")) for h in held}
    redrawn = [(c, s, d) in {tuple(h.split(":")) for h in held}
               for c, s, d in zip(plain["colour"], plain["shape"], plain["direction"])]
    assert any(redrawn)  # the test set did contain them
    keep = [not r for r in redrawn]
    assert table[keep]["text"].tolist() == plain[keep]["text"].tolist()
    with pytest.raises(KinemaError, match="unknown shape 'star'"):
        make_dataset(2, exclude=["red:star:left"])
    result = kinema_cli("data", "synth", "-n", 40, "-o", tmp_path, "--frames", 4, "--format", "gif",
                     *[a for h in held for a in ("--exclude", h)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "meta.csv")
    assert not set(zip(written["colour"], written["shape"], written["direction"])) & {tuple(h.split(":")) for h in held}
