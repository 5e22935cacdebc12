"""The synthetic set as kinema-data draws and writes it; the shapes themselves (vocabulary, renderer,
analyser) are tested with kinema.core.shapes in kinema-core's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kinema.core import KinemaError
from kinema.core.shapes import COLOURS, DIRECTIONS, _gaussian_blur, _largest_blob, analyse
from kinema.core.video import read_video
from kinema.data.synthetic import make_dataset


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
        text = row["text"].lower()  # a caption may start with a capital letter
        assert row["colour"] in text and row["shape"] in text
    openings = {text.split()[0].lower() for text in table["text"]}
    assert len(openings) >= 3


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


def test_a_set_of_one_shape_draws_only_it_and_keeps_the_clips_a_full_set_has(kinema_cli, tmp_path):
    plain, _ = make_dataset(200, seed=3, num_frames=4)
    squares, _ = make_dataset(200, seed=3, num_frames=4, shapes=["square"])
    assert set(squares["shape"]) == {"square"}
    assert set(squares["colour"]) == set(plain["colour"]) and set(squares["direction"]) == set(plain["direction"])
    was_square = (plain["shape"] == "square").to_numpy()
    assert 0 < was_square.sum() < 200
    assert squares[was_square]["text"].tolist() == plain[was_square]["text"].tolist()  # redrawn only where needed
    with pytest.raises(KinemaError, match="exclude leaves no"):
        make_dataset(2, shapes=["square"], exclude=[f"{c}:square:{d}" for c in COLOURS for d in DIRECTIONS])
    result = kinema_cli("data", "synth", "-n", 30, "-o", tmp_path, "--frames", 4, "--format", "gif",
                        "--shape", "circle", "--shape", "triangle")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "meta.csv")["shape"]) == {"circle", "triangle"}
    result = kinema_cli("data", "synth", "-n", 3, "-o", tmp_path / "x", "--shape", "star")
    assert result.exit_code != 0 and "star" in result.output and "Traceback" not in result.output


def test_numpy_blob_and_blur_match_opencv():
    """kinema.core.shapes reimplements the two OpenCV calls the analyser used, so it needs no OpenCV."""
    import cv2

    rng = np.random.default_rng(0)
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        mask = rng.random((h, w)) < (0.05 if trial % 3 == 0 else rng.uniform(0.1, 0.6))  # sparse: many ties
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        expected = None if count < 2 else labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        got = _largest_blob(mask)
        assert (got is None) == (expected is None) and (got is None or np.array_equal(got, expected))
        image = rng.uniform(0, 255, (h + 4, w + 4))
        np.testing.assert_allclose(_gaussian_blur(image), cv2.GaussianBlur(image, (0, 0), 0.7), rtol=0, atol=1e-12)
