"""Buckets of Open-Sora 1.1: which (resolution, num_frames, aspect ratio) a video trains in.

``bucket_config = {resolution: {num_frames: (keep_prob, batch_size)}}``, e.g.
``{"240p": {16: (1.0, 16), 32: (1.0, 8)}, "256": {1: (1.0, 256)}}``; num_frames 1 = images;
``(0.0, None)`` disables a bucket.

Assignment (``Bucket.get_bucket_id``): resolutions from the largest pixel budget down, skipping
those whose budget exceeds the video's H*W / 0.8. An image takes the resolution's ``1`` bucket
with probability keep_prob. A video takes the largest frame bucket f (f != 1) with
T > f * frame_interval and keeps it with probability keep_prob; a rejected video falls to the
next resolution (never to a smaller frame bucket of the same one). The aspect key is the
resolution's closest ratio. Random draws use numpy's default_rng(seed + bucket index).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kinema.core import KinemaError
from kinema.core.aspect import closest_ratio, get_table

BucketId = tuple[str, int, str]  # (resolution, num_frames, aspect key)


def parse_bucket_config(config: Mapping) -> dict[str, dict[int, tuple[float, int | None]]]:
    """Validate and normalise (YAML gives string keys and lists)."""
    parsed: dict[str, dict[int, tuple[float, int | None]]] = {}
    for resolution, frames in config.items():
        get_table(str(resolution))
        if not isinstance(frames, Mapping):
            raise KinemaError(f"bucket_config[{resolution!r}] must map num_frames -> (keep_prob, batch_size)")
        parsed[str(resolution)] = {}
        for t, value in frames.items():
            try:
                prob, batch_size = value
                t, prob = int(t), float(prob)
            except (TypeError, ValueError):
                raise KinemaError(f"bucket_config[{resolution!r}][{t!r}] = {value!r}: write (keep_prob, batch_size), "
                               "e.g. (1.0, 8), or (0.0, null) to disable") from None
            if not 0.0 <= prob <= 1.0:
                raise KinemaError(f"bucket_config[{resolution!r}][{t}]: keep_prob {prob} is not in [0, 1]")
            if prob > 0 and (batch_size is None or int(batch_size) < 1):
                raise KinemaError(f"bucket_config[{resolution!r}][{t}]: an enabled bucket needs a batch size >= 1")
            parsed[str(resolution)][t] = (prob, None if batch_size is None else int(batch_size))
    return parsed


class Bucket:
    def __init__(self, bucket_config: Mapping, approx: float = 0.8):
        config = parse_bucket_config(bucket_config)
        self.approx = approx
        order = sorted(config, key=lambda name: get_table(name)[0], reverse=True)
        self.probs: dict[str, dict[int, float]] = {}
        self.batch_sizes: dict[str, dict[int, int | None]] = {}
        self.index: dict[str, dict[int, int]] = {}  # (res, frames) -> running index, seeds the draws
        count = 0
        for resolution in order:
            frames = sorted(config[resolution], reverse=True)
            self.probs[resolution] = {t: config[resolution][t][0] for t in frames}
            self.batch_sizes[resolution] = {t: config[resolution][t][1] for t in frames}
            self.index[resolution] = {}
            for t in frames:
                self.index[resolution][t] = count
                count += 1
        self.num_bucket = count

    def get_bucket_id(self, T: int, H: int, W: int, frame_interval: int = 1, seed: int = 0) -> BucketId | None:
        pixels = H * W
        for resolution, frame_probs in self.probs.items():
            if pixels < get_table(resolution)[0] * self.approx:
                continue
            if T == 1:
                if 1 in frame_probs and self._draw(seed, resolution, 1) < frame_probs[1]:
                    return self._with_ratio(resolution, 1, H, W)
                continue
            chosen = next((t for t in frame_probs if t != 1 and T > t * frame_interval), None)
            if chosen is None:
                continue
            prob = frame_probs[chosen]
            if prob == 1.0 or self._draw(seed, resolution, chosen) < prob:
                return self._with_ratio(resolution, chosen, H, W)
        return None

    def _draw(self, seed: int, resolution: str, t: int) -> float:
        return float(np.random.default_rng(seed + self.index[resolution][t]).random())

    def _with_ratio(self, resolution: str, t: int, H: int, W: int) -> BucketId:
        return resolution, t, closest_ratio(H, W, get_table(resolution)[1])

    def get_batch_size(self, bucket_id: BucketId) -> int:
        resolution, t, _ = bucket_id
        return self.batch_sizes[resolution][t]

    def get_thw(self, bucket_id: BucketId) -> tuple[int, int, int]:
        resolution, t, ratio = bucket_id
        h, w = get_table(resolution)[1][ratio]
        return t, h, w
