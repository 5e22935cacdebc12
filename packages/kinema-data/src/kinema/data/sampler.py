"""Open-Sora 1.1's bucket batch sampler: every micro-batch comes from one bucket.

Per epoch: bucket every row (seed = seed + epoch + row * num_bucket); in each bucket drop (or,
with ``drop_last=False``, pad by repeating the head) the remainder to a multiple of its batch size
and shuffle (torch.Generator seeded seed + epoch); list each bucket id once per micro-batch,
shuffle that list and trim/pad it to a multiple of ``num_replicas``; step i hands element
i * num_replicas + rank to each rank. A batch is a list of ``"{index}-{T}-{H}-{W}"`` strings,
which the variable-size dataset parses.

Resume: ``state_dict()`` = {seed, epoch, last_micro_batch_access_index}; a sampler that loads it
yields exactly the batches the saved one had not yet yielded (also with another world size).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import pandas as pd
import torch

from kinema.core import KinemaError

from .buckets import Bucket, BucketId


class VariableVideoBatchSampler:
    def __init__(
        self,
        table: pd.DataFrame,
        bucket_config: Mapping,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        frame_interval: int = 1,
    ):
        missing = [c for c in ("num_frames", "height", "width") if c not in table.columns]
        if missing:
            raise KinemaError(f"the bucket sampler needs column(s) {', '.join(missing)}; run `kinema data info` first")
        if not 0 <= rank < num_replicas:
            raise KinemaError(f"rank {rank} is not in [0, {num_replicas})")
        self.thw = table[["num_frames", "height", "width"]].astype(int).to_numpy()
        self.bucket = Bucket(bucket_config)
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.frame_interval = frame_interval
        self.epoch = 0
        self.last_micro_batch_access_index = 0
        self._cache: tuple[int, OrderedDict] | None = None

    # ------------------------------------------------------------------ buckets

    def group_by_bucket(self) -> OrderedDict[BucketId, list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        groups: OrderedDict[BucketId, list[int]] = OrderedDict()
        base = self.seed + self.epoch
        for index, (t, h, w) in enumerate(self.thw):
            bucket_id = self.bucket.get_bucket_id(int(t), int(h), int(w), self.frame_interval,
                                                  seed=base + index * self.bucket.num_bucket)
            if bucket_id is not None:
                groups.setdefault(bucket_id, []).append(index)
        self._cache = (self.epoch, groups)
        return groups

    def _plan(self) -> tuple[dict[BucketId, list[int]], list[BucketId]]:
        """Per-bucket index lists and the access order of micro-batches for this epoch."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        buckets: dict[BucketId, list[int]] = {}
        order: list[BucketId] = []
        for bucket_id, indices in self.group_by_bucket().items():
            batch_size = self.bucket.get_batch_size(bucket_id)
            indices = list(indices)
            remainder = len(indices) % batch_size
            if remainder:
                if self.drop_last:
                    indices = indices[: len(indices) - remainder]
                else:
                    indices += (indices * batch_size)[: batch_size - remainder]
            if self.shuffle:
                indices = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
            buckets[bucket_id] = indices
            order += [bucket_id] * (len(indices) // batch_size)
        if self.shuffle:
            order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
        remainder = len(order) % self.num_replicas
        if remainder:
            if self.drop_last:
                order = order[: len(order) - remainder]
            else:
                order += (order * self.num_replicas)[: self.num_replicas - remainder]
        return buckets, order

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[list[str]]:
        buckets, order = self._plan()
        replicas = self.num_replicas
        start_step = self.last_micro_batch_access_index // replicas
        consumed: dict[BucketId, int] = {}
        for bucket_id in order[: start_step * replicas]:  # skip what was consumed before a resume
            consumed[bucket_id] = consumed.get(bucket_id, 0) + self.bucket.get_batch_size(bucket_id)
        self.last_micro_batch_access_index = start_step * replicas
        for step in range(start_step, len(order) // replicas):
            step_buckets = order[step * replicas : (step + 1) * replicas]
            self.last_micro_batch_access_index += replicas
            mine = None
            for r, bucket_id in enumerate(step_buckets):
                begin = consumed.get(bucket_id, 0)
                end = begin + self.bucket.get_batch_size(bucket_id)
                consumed[bucket_id] = end
                if r == self.rank:
                    mine = (bucket_id, begin, end)
            bucket_id, begin, end = mine
            t, h, w = self.bucket.get_thw(bucket_id)
            yield [f"{index}-{t}-{h}-{w}" for index in buckets[bucket_id][begin:end]]
        self.last_micro_batch_access_index = 0

    def get_num_batch(self) -> int:
        """Micro-batches in this epoch over all ranks."""
        return len(self._plan()[1])

    def __len__(self) -> int:
        return self.get_num_batch() // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ------------------------------------------------------------------ resume

    def state_dict(self, num_steps: int | None = None) -> dict:
        """Resume point; ``num_steps`` (steps done this epoch) overrides the live counter."""
        index = self.last_micro_batch_access_index if num_steps is None else num_steps * self.num_replicas
        return {"seed": self.seed, "epoch": self.epoch, "last_micro_batch_access_index": index}

    def load_state_dict(self, state: Mapping) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.last_micro_batch_access_index = int(state["last_micro_batch_access_index"])
        self._cache = None
