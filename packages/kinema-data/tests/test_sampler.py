from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kinema.data.sampler import VariableVideoBatchSampler

CONFIG = {
    "144p": {1: (1.0, 8), 16: (1.0, 4), 32: (0.5, 2)},
    "240p": {1: (0.5, 4), 16: (1.0, 3), 32: (1.0, 2)},
    "480p": {16: (0.5, 2)},
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    sizes = [(144, 256), (240, 426), (480, 854), (360, 640), (720, 1280), (256, 256), (600, 400)]
    rows = []
    for i in range(300):
        h, w = sizes[rng.integers(len(sizes))]
        t = 1 if rng.random() < 0.2 else int(rng.integers(10, 80))
        rows.append({"path": f"/v/{i}.mp4", "num_frames": t, "height": h, "width": w})
    return pd.DataFrame(rows)


def _epoch(sampler) -> list[list[str]]:
    return [list(b) for b in sampler]


def test_batches_are_single_bucket_unique_and_deterministic_per_seed(table):
    batches = _epoch(VariableVideoBatchSampler(table, CONFIG, seed=7))
    assert batches == _epoch(VariableVideoBatchSampler(table, CONFIG, seed=7))
    assert batches != _epoch(VariableVideoBatchSampler(table, CONFIG, seed=8))
    sampler = VariableVideoBatchSampler(table, CONFIG, seed=7)
    seen = []
    for batch in batches:
        shapes = {tuple(item.split("-")[1:]) for item in batch}
        assert len(shapes) == 1
        t, h, w = (int(x) for x in shapes.pop())
        assert len(batch) == sampler.bucket.batch_sizes[_resolution_of(sampler, t, h, w)][t]
        seen += [int(item.split("-")[0]) for item in batch]
    assert len(seen) == len(set(seen))
    assert len(batches) == len(sampler)


def _resolution_of(sampler, t, h, w):
    from kinema.core.aspect import ASPECT_RATIOS

    for name in sampler.bucket.probs:
        if (h, w) in ASPECT_RATIOS[name][1].values() and t in sampler.bucket.probs[name]:
            return name
    raise AssertionError((t, h, w))


def test_items_keep_their_bucket_rules(table):
    sampler = VariableVideoBatchSampler(table, CONFIG, seed=3)
    for batch in sampler:
        for item in batch:
            index, t, h, w = (int(x) for x in item.split("-"))
            row = table.iloc[index]
            assert (row.num_frames == 1) == (t == 1)
            assert t == 1 or row.num_frames > t


def test_epochs_reshuffle(table):
    sampler = VariableVideoBatchSampler(table, CONFIG, seed=1)
    first = _epoch(sampler)
    sampler.set_epoch(1)
    assert _epoch(sampler) != first


def test_resume_from_saved_state_gives_exactly_the_remaining_batches(table):
    reference = _epoch(VariableVideoBatchSampler(table, CONFIG, seed=5))
    sampler = VariableVideoBatchSampler(table, CONFIG, seed=5)
    iterator = iter(sampler)
    consumed = [next(iterator) for _ in range(7)]
    state = sampler.state_dict()
    assert state == {"seed": 5, "epoch": 0, "last_micro_batch_access_index": 7}
    resumed = VariableVideoBatchSampler(table, CONFIG, seed=123)
    resumed.load_state_dict(state)
    assert consumed + _epoch(resumed) == reference
    assert _epoch(resumed) == reference  # the next epoch starts from the beginning again


def test_ranks_split_the_steps_and_resume_with_another_world_size(table):
    single = _epoch(VariableVideoBatchSampler(table, CONFIG, seed=2))
    ranks = [_epoch(VariableVideoBatchSampler(table, CONFIG, seed=2, num_replicas=2, rank=r)) for r in range(2)]
    assert ranks[0] == single[0 : 2 * len(ranks[0]) : 2]
    assert ranks[1] == single[1 : 2 * len(ranks[1]) : 2]
    # 4 steps on one process, then continue on two
    state = VariableVideoBatchSampler(table, CONFIG, seed=2).state_dict(num_steps=4)
    rank0 = VariableVideoBatchSampler(table, CONFIG, num_replicas=2, rank=0)
    rank0.load_state_dict(state)
    assert next(iter(rank0)) == single[4]
