from __future__ import annotations

import numpy as np
import pytest

from kinema.core import KinemaError
from kinema.data.buckets import Bucket, parse_bucket_config

CONFIG = {
    "144p": {1: (1.0, 48), 16: (1.0, 6), 32: (1.0, 3), 96: (1.0, 1)},
    "240p": {16: (1.0, 2), 32: (1.0, 1), 64: (0.0, None)},
    "256": {1: (1.0, 24)},
    "480p": {1: (1.0, 8), 16: (1.0, 4)},
}

# (T, H, W, frame_interval) -> bucket id, worked out by hand from upstream's rules
CASES = [
    ((100, 720, 1280, 1), ("480p", 16, "0.56")),  # biggest resolution that fits, biggest frame bucket below T
    ((10, 720, 1280, 1), None),  # no frame bucket below T anywhere
    ((16, 720, 1280, 1), None),  # T must exceed the bucket strictly
    ((70, 360, 640, 1), ("144p", 32, "0.56")),  # 240p's 64 is disabled: fall to the next resolution, not to 32
    ((40, 360, 640, 1), ("240p", 32, "0.56")),  # 360p video is below 0.8 * 480p's budget
    ((40, 360, 640, 3), None),  # frame_interval 3: needs T > 3 * 16
    ((50, 360, 640, 3), ("240p", 16, "0.56")),
    ((1, 1080, 1920, 1), ("480p", 1, "0.56")),  # images go to a resolution's 1-frame bucket
    ((1, 300, 300, 1), ("256", 1, "1.0")),  # 240p has no image bucket: next one
    ((40, 1, 81792, 1), ("240p", 32, "0.38")),  # exactly 0.8 * 240p's budget still fits it
    ((40, 1, 81791, 1), ("144p", 32, "0.38")),  # one pixel less does not
    ((20, 1280, 720, 1), ("480p", 16, "1.78")),  # portrait
    ((20, 480, 640, 1), ("240p", 16, "0.75")),
    ((200, 100, 100, 1), None),  # below every budget
]


@pytest.mark.parametrize("thwi, expected", CASES)
def test_bucket_assignment_matches_upstream_rules(thwi, expected):
    t, h, w, interval = thwi
    assert Bucket(CONFIG).get_bucket_id(t, h, w, interval, seed=0) == expected


def test_keep_probability_draws_are_seeded_per_bucket_and_fall_to_the_next_resolution():
    bucket = Bucket({"240p": {16: (0.5, 2), 32: (1.0, 1)}, "144p": {16: (1.0, 4)}})
    # bucket indices in budget-then-frames order: 240p/32 = 0, 240p/16 = 1, 144p/16 = 2
    results = [bucket.get_bucket_id(20, 360, 640, seed=s) for s in range(400)]
    expected = ["240p" if np.random.default_rng(s + 1).random() < 0.5 else "144p" for s in range(400)]
    assert [r[0] for r in results] == expected
    assert 0.4 < expected.count("240p") / 400 < 0.6
    assert {r[1] for r in results} == {16}


def test_batch_size_and_target_size():
    bucket = Bucket(CONFIG)
    bucket_id = bucket.get_bucket_id(40, 360, 640, seed=0)
    assert bucket.get_batch_size(bucket_id) == 1
    assert bucket.get_thw(bucket_id) == (32, 240, 426)


def test_bad_configs_are_explained():
    with pytest.raises(KinemaError, match="unknown resolution '999p'"):
        parse_bucket_config({"999p": {16: (1.0, 2)}})
    with pytest.raises(KinemaError, match="keep_prob, batch_size"):
        parse_bucket_config({"240p": {16: 1.0}})
    with pytest.raises(KinemaError, match="batch size"):
        parse_bucket_config({"240p": {16: (1.0, None)}})
    assert parse_bucket_config({"240p": {"16": [0.5, 2], "64": [0.0, None]}}) == {"240p": {16: (0.5, 2),
                                                                                         64: (0.0, None)}}
