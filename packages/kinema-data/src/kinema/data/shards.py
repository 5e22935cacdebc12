"""webdataset tar shards: clips + captions, and precomputed latents + text embeddings.

Clip shards keep each video file's bytes unchanged (``<key>.mp4`` / ``.webp`` ...) next to
``<key>.json`` (caption and metadata), so reading one back decodes the very frames the file had.
Feature shards hold ``<key>.safetensors`` (the tensors) and ``<key>.json``; safetensors keeps
reading free of pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from kinema.core import KinemaError
from kinema.core.video import read_video

SHARD_PATTERN = "shard-%06d.tar"
META_COLUMNS = ("num_frames", "fps", "height", "width", "aspect_ratio")


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _writer(output_dir: str | os.PathLike, max_count: int):
    import webdataset as wds

    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return wds.ShardWriter(str(Path(output_dir) / SHARD_PATTERN), maxcount=max_count, verbose=0)


def _shard_list(output_dir) -> list[Path]:
    return sorted(Path(output_dir).glob("shard-*.tar"))


# ----------------------------------------------------------------------------- clips + captions


def write_clip_shards(table: pd.DataFrame, output_dir: str | os.PathLike, max_count: int = 1000,
                      progress: bool = False) -> list[Path]:
    """One sample per row: the file's bytes under its extension, and a json with text + metadata."""
    from kinema.core.progress import progress_bar

    writer = _writer(output_dir, max_count)
    rows = progress_bar(table.to_dict("records"), total=len(table), desc="shards", unit="clip", enabled=progress)
    with writer:
        for index, row in enumerate(rows):
            path = Path(row["path"])
            meta = {"text": row["text"], "source": str(path)}
            meta.update({c: _jsonable(row[c]) for c in META_COLUMNS if c in row})
            writer.write({"__key__": f"{index:09d}", path.suffix.lower().lstrip("."): path.read_bytes(),
                          "json": json.dumps(meta).encode()})
    return _shard_list(output_dir)


def _decode_video(data: bytes, extension: str) -> torch.Tensor:
    with tempfile.NamedTemporaryFile(suffix=f".{extension}") as tmp:
        tmp.write(data)
        tmp.flush()
        return read_video(tmp.name).frames


VIDEO_KEYS = ("mp4", "webp", "gif", "webm", "mkv", "mov", "avi")


def decode_clip_sample(sample: Mapping) -> dict:
    extension = next((k for k in VIDEO_KEYS if k in sample), None)
    if extension is None:
        raise KinemaError(f"shard sample {sample.get('__key__')!r} holds no video ({', '.join(sorted(sample))})")
    meta = json.loads(sample["json"])
    return {"key": sample["__key__"], "frames": _decode_video(sample[extension], extension), "text": meta["text"],
            "meta": meta}


def clip_shard_dataset(shards: list[str | os.PathLike], shuffle: int = 0):
    """A webdataset pipeline of decoded samples {key, frames uint8 [T,H,W,3], text, meta}."""
    import webdataset as wds

    dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.map(decode_clip_sample)


def read_clip_shards(shards: list[str | os.PathLike]) -> Iterator[dict]:
    yield from clip_shard_dataset(shards)


# ----------------------------------------------------------------------------- latents + text embeddings


class FeatureShardWriter:
    """Write samples of named tensors (e.g. latents, text_emb, text_mask) plus a caption."""

    def __init__(self, output_dir: str | os.PathLike, max_count: int = 1000):
        self.output_dir = Path(output_dir)
        self._writer = _writer(output_dir, max_count)
        self._count = 0

    def write(self, tensors: Mapping[str, torch.Tensor], text: str, **meta) -> None:
        payload = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        meta = {"text": text, **{k: _jsonable(v) for k, v in meta.items()}}
        self._writer.write({"__key__": f"{self._count:09d}", "safetensors": payload, "json": json.dumps(meta).encode()})
        self._count += 1

    def close(self) -> list[Path]:
        self._writer.close()
        return _shard_list(self.output_dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def decode_feature_sample(sample: Mapping) -> dict:
    meta = json.loads(sample["json"])
    return {"key": sample["__key__"], **load_tensors(sample["safetensors"]), "text": meta["text"], "meta": meta}


def feature_shard_dataset(shards: list[str | os.PathLike], shuffle: int = 0):
    """A webdataset pipeline of {key, <tensor names>..., text, meta}."""
    import webdataset as wds

    dataset = wds.WebDataset([str(s) for s in shards], shardshuffle=False, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(shuffle)
    return dataset.map(decode_feature_sample)


def read_feature_shards(shards: list[str | os.PathLike]) -> Iterator[dict]:
    yield from feature_shard_dataset(shards)
