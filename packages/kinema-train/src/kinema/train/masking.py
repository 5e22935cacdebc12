"""Open-Sora 1.1's random frame masking for image/video-conditioned training.

Per sample one strategy is drawn by its ratio; the frames it masks (False) are given as
conditioning: the scheduler noises them at t=0, the model sees them with t=0 modulation
(``x_mask``) and they are left out of the loss. True = frame is denoised and trained.
"""

from __future__ import annotations

import math
import random
from typing import Mapping

import torch

from kinema.core import KinemaError

STRATEGIES = (
    "mask_no",
    "mask_quarter_random",
    "mask_quarter_head",
    "mask_quarter_tail",
    "mask_quarter_head_tail",
    "mask_image_random",
    "mask_image_head",
    "mask_image_tail",
    "mask_image_head_tail",
)

# the stage-1/2/3 values of Open-Sora 1.1 (25% of samples conditioned)
OPEN_SORA_1_1_RATIOS = {
    "mask_no": 0.75,
    "mask_quarter_random": 0.025,
    "mask_quarter_head": 0.025,
    "mask_quarter_tail": 0.025,
    "mask_quarter_head_tail": 0.05,
    "mask_image_random": 0.025,
    "mask_image_head": 0.025,
    "mask_image_tail": 0.025,
    "mask_image_head_tail": 0.05,
}


class MaskGenerator:
    def __init__(self, ratios: Mapping[str, float]):
        unknown = sorted(set(ratios) - set(STRATEGIES))
        if unknown:
            raise KinemaError(f"unknown mask strategies {', '.join(unknown)}; valid: {', '.join(STRATEGIES)}")
        if any(not 0 <= r <= 1 for r in ratios.values()):
            raise KinemaError(f"mask ratios must be in [0, 1], got {dict(ratios)}")
        if not math.isclose(sum(ratios.values()), 1.0, abs_tol=1e-6):
            raise KinemaError(f"mask ratios must sum to 1, they sum to {sum(ratios.values()):.6f}")
        self.ratios = dict(ratios)

    def pick(self, rng: random.Random) -> str:
        u, cumulative = rng.random(), 0.0
        for name, ratio in self.ratios.items():
            cumulative += ratio
            if u < cumulative:
                return name
        return next(reversed(self.ratios))  # u within rounding of 1

    def frame_mask(self, num_frames: int, rng: random.Random) -> torch.Tensor:
        """One sample's mask [T] (bool, True = denoise)."""
        mask = torch.ones(num_frames, dtype=torch.bool)
        if num_frames <= 1:
            return mask
        strategy = self.pick(rng)
        quarter = max(num_frames // 4, 1)
        if strategy == "mask_quarter_random":
            size = rng.randint(1, quarter)
            start = rng.randint(0, num_frames - size)
            mask[start : start + size] = False
        elif strategy == "mask_quarter_head":
            mask[: rng.randint(1, quarter)] = False
        elif strategy == "mask_quarter_tail":
            mask[num_frames - rng.randint(1, quarter) :] = False
        elif strategy == "mask_quarter_head_tail":
            size = rng.randint(1, quarter)
            mask[:size] = False
            mask[num_frames - size :] = False
        elif strategy == "mask_image_random":
            mask[rng.randint(0, num_frames - 1)] = False
        elif strategy == "mask_image_head":
            mask[0] = False
        elif strategy == "mask_image_tail":
            mask[-1] = False
        elif strategy == "mask_image_head_tail":
            mask[0] = mask[-1] = False
        return mask
