"""Training data: a deterministic, resumable stream of global batches, split over data-parallel ranks.

Sources (``data.source``):
- ``synthetic``: kinema-data's moving coloured shapes, rendered in memory (clips + captions);
- ``table``: a CSV/parquet of clips (``path, text[, num_frames, height, width]``), fixed size, or
  Open-Sora 1.1 buckets (``data.bucket_config``, kinema-data's VariableVideoBatchSampler);
- ``features``: precomputed shards of ``latents`` + ``text_emb`` (+ ``text_mask``) (kinema-data's
  ``precompute``), loaded into memory.

The position in the stream is (epoch, step in epoch); it is all a resume needs, because the order
of an epoch depends only on (seed, epoch). Items whose reading is random (temporal crops) are
reseeded from (seed, epoch, index) so a resumed run reads exactly the same frames.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import default_collate

from kinema.core import KinemaError

from .config import DataConfig


@dataclass
class StreamPosition:
    epoch: int = 0
    step_in_epoch: int = 0


class InMemoryClips(torch.utils.data.Dataset):
    """Items already decoded: dicts of tensors / strings / numbers."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[int(index)]


def synthetic_items(cfg: DataConfig, seed: int) -> list[dict]:
    from kinema.core.shapes import FPS
    from kinema.core.video import to_float
    from kinema.data.synthetic import make_dataset

    height, width = cfg.image_size
    table, clips = make_dataset(cfg.num_samples + cfg.holdout, seed=seed, num_frames=cfg.num_frames,
                                height=height, width=width)
    return [
        {"video": to_float(torch.as_tensor(clip)), "text": str(text), "num_frames": clip.shape[0],
         "height": height, "width": width, "fps": FPS}
        for clip, text in zip(clips, table["text"])
    ]


def feature_items(path: str) -> list[dict]:
    from kinema.data.shards import read_feature_shards

    shards = sorted(glob.glob(os.path.join(path, "*.tar"))) if os.path.isdir(path) else [path]
    if not shards:
        raise KinemaError(f"no feature shards (*.tar) in {path}; write them with kinema-data's precompute")
    items = []
    for sample in read_feature_shards(shards):
        meta = sample["meta"]
        latents = sample["latents"]
        item = {"latents": latents, "y": sample["text_emb"], "text": sample["text"],
                "num_frames": meta.get("num_frames", latents.shape[1]), "height": meta.get("height", 0),
                "width": meta.get("width", 0), "fps": meta.get("fps", 0.0)}
        if "text_mask" in sample:
            item["y_mask"] = sample["text_mask"]
        items.append(item)
    return items


class BatchStream:
    """Yields this rank's share of each global batch, with the stream position before it."""

    def __init__(self, cfg: DataConfig, seed: int, dp_size: int = 1, dp_rank: int = 0):
        self.cfg, self.seed, self.dp_size, self.dp_rank = cfg, seed, dp_size, dp_rank
        self.position = StreamPosition()
        self.bucket_sampler = None
        self.holdout: list[dict] = []
        if cfg.source == "synthetic":
            items = synthetic_items(cfg, seed)
            self.holdout = items[cfg.num_samples:]
            self.dataset = InMemoryClips(items[: cfg.num_samples])
        elif cfg.source == "features":
            self.dataset = InMemoryClips(feature_items(cfg.path))
        else:
            self._table_dataset()
        if self.bucket_sampler is None and cfg.batch_size % dp_size:
            raise KinemaError(f"data.batch_size={cfg.batch_size} must be a multiple of the {dp_size} "
                "data-parallel ranks")
        if self.bucket_sampler is None and len(self.dataset) < cfg.batch_size:
            raise KinemaError(f"the data has {len(self.dataset)} samples, fewer than data.batch_size={cfg.batch_size}")

    def _table_dataset(self) -> None:
        from kinema.data.datasets import VariableVideoTextDataset, VideoTextDataset
        from kinema.data.table import read_table

        table = read_table(self.cfg.path)
        if self.cfg.bucket_config:
            from kinema.data.sampler import VariableVideoBatchSampler

            self.dataset = VariableVideoTextDataset(table, self.cfg.frame_interval, root=self.cfg.root, seed=self.seed)
            self.bucket_sampler = VariableVideoBatchSampler(
                table, self.cfg.bucket_config, num_replicas=self.dp_size, rank=self.dp_rank, seed=self.seed,
                frame_interval=self.cfg.frame_interval,
            )
        else:
            self.dataset = VideoTextDataset(table, self.cfg.num_frames, self.cfg.frame_interval,
                                            tuple(self.cfg.image_size), root=self.cfg.root, seed=self.seed)

    # -- order -------------------------------------------------------------------------------

    def _epoch_batches(self, epoch: int) -> list[list]:
        if self.bucket_sampler is not None:
            self.bucket_sampler.set_epoch(epoch)
            self.bucket_sampler.last_micro_batch_access_index = 0
            return list(iter(self.bucket_sampler))
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        B, share = self.cfg.batch_size, self.cfg.batch_size // self.dp_size
        batches = [order[i : i + B] for i in range(0, len(order) - B + 1, B)]
        return [b[self.dp_rank * share : (self.dp_rank + 1) * share] for b in batches]

    def _load(self, index, epoch: int) -> dict:
        rng = getattr(self.dataset, "rng", None)
        if rng is not None:  # temporal crops drawn from a per-item stream: identical after a resume
            rng.seed(f"{self.seed}-{epoch}-{index}")
        return self.dataset[index]

    def __iter__(self) -> Iterator[tuple[StreamPosition, dict]]:
        while True:
            epoch = self.position.epoch
            batches = self._epoch_batches(epoch)
            if not batches:
                raise KinemaError("an epoch holds no complete batch; lower data.batch_size or add data")
            while self.position.step_in_epoch < len(batches):
                indices = batches[self.position.step_in_epoch]
                before = StreamPosition(epoch, self.position.step_in_epoch)
                self.position.step_in_epoch += 1
                yield before, collate([self._load(i, epoch) for i in indices])
            self.position = StreamPosition(epoch + 1, 0)

    def state_dict(self) -> dict:
        return {"epoch": self.position.epoch, "step_in_epoch": self.position.step_in_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.position = StreamPosition(int(state["epoch"]), int(state["step_in_epoch"]))


def collate(items: list[dict]) -> dict:
    batch = default_collate(items)
    for key in ("num_frames", "height", "width", "fps"):
        if key in batch:
            batch[key] = torch.as_tensor(batch[key], dtype=torch.float32)
    return batch
