import random
from collections import Counter

import pytest

from kinema.core import KinemaError
from kinema.train.masking import OPEN_SORA_1_1_RATIOS, MaskGenerator


def test_ratios_are_validated():
    with pytest.raises(KinemaError, match="sum to 1"):
        MaskGenerator({"mask_no": 0.5})
    with pytest.raises(KinemaError, match="unknown mask strategies mask_random"):
        MaskGenerator({"mask_no": 0.5, "mask_random": 0.5})  # a v1.0-style name


def test_strategies_follow_their_ratios():
    gen = MaskGenerator(OPEN_SORA_1_1_RATIOS)
    rng = random.Random(0)
    counts = Counter(gen.pick(rng) for _ in range(20000))
    for name, ratio in OPEN_SORA_1_1_RATIOS.items():
        assert abs(counts[name] / 20000 - ratio) < 0.01


@pytest.mark.parametrize("strategy,check", [
    ("mask_image_head", lambda m: m.tolist() == [False] + [True] * 15),
    ("mask_image_tail", lambda m: m.tolist() == [True] * 15 + [False]),
    ("mask_image_head_tail", lambda m: m.tolist() == [False] + [True] * 14 + [False]),
    ("mask_image_random", lambda m: (~m).sum() == 1),
    ("mask_quarter_head", lambda m: 1 <= (~m).sum() <= 4 and not m[0] and m[4:].all()),
    ("mask_quarter_tail", lambda m: 1 <= (~m).sum() <= 4 and not m[-1] and m[:12].all()),
    ("mask_quarter_head_tail", lambda m: (~m[:4]).sum() == (~m[12:]).sum() >= 1 and m[4:12].all()),
    ("mask_quarter_random", lambda m: 1 <= (~m).sum() <= 4),
    ("mask_no", lambda m: m.all()),
])
def test_each_strategy(strategy, check):
    gen = MaskGenerator({strategy: 1.0})
    rng = random.Random(1)
    for _ in range(50):
        mask = gen.frame_mask(16, rng)
        assert mask.dtype.is_floating_point is False and check(mask)
    assert gen.frame_mask(1, rng).all()  # a single frame is never conditioned
