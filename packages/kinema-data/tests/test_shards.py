from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kinema.core.video import read_video
from kinema.data.precompute import precompute_features
from kinema.data.shards import FeatureShardWriter, read_clip_shards, read_feature_shards, write_clip_shards
from kinema.data.synthetic import write_dataset


def test_clip_shards_round_trip(tmp_path, media_dir):
    meta = pd.read_csv(write_dataset(5, tmp_path / "synth", seed=1, size=32, num_frames=8))
    real = media_dir / "video_wan_ati-1.webp"
    table = pd.concat([meta, pd.DataFrame({"path": [str(real)], "text": ["a real clip"]})], ignore_index=True)
    shards = write_clip_shards(table, tmp_path / "shards", max_count=2)
    assert len(shards) == 3
    samples = list(read_clip_shards(shards))
    assert [s["text"] for s in samples] == table["text"].tolist()
    for sample, path in zip(samples, table["path"]):
        assert torch.equal(sample["frames"], read_video(path).frames)
    assert samples[0]["meta"]["num_frames"] == 8


def test_feature_shards_round_trip(tmp_path):
    rng = torch.Generator().manual_seed(0)
    written = []
    with FeatureShardWriter(tmp_path, max_count=3) as writer:
        for i in range(7):
            tensors = {"latents": torch.randn(4, 2, 8, 8, generator=rng), "text_emb": torch.randn(5, 16, generator=rng),
                       "text_mask": torch.arange(5) < i % 5 + 1}
            writer.write(tensors, f"caption {i}", fps=8.0)
            written.append(tensors)
    shards = sorted(tmp_path.glob("shard-*.tar"))
    assert len(shards) == 3
    samples = list(read_feature_shards(shards))
    assert [s["text"] for s in samples] == [f"caption {i}" for i in range(7)]
    for sample, tensors in zip(samples, written):
        for name, value in tensors.items():
            assert sample[name].dtype == value.dtype and torch.equal(sample[name], value)


def test_precompute_writes_encoder_outputs(tmp_path):
    table = pd.read_csv(write_dataset(5, tmp_path / "synth", seed=2, size=32, num_frames=8))

    def encode_video(video):  # a stand-in encoder with a known formula: 2x2 spatial mean, 4 channels
        pooled = torch.nn.functional.avg_pool3d(video, (1, 2, 2))
        return torch.cat([pooled, pooled[:, :1]], dim=1)

    def encode_text(texts):
        lengths = torch.tensor([len(t) for t in texts], dtype=torch.float32)
        return lengths[:, None, None].expand(-1, 3, 4).clone(), torch.ones(len(texts), 3, dtype=torch.bool)

    shards = precompute_features(table, encode_video, encode_text, tmp_path / "features", num_frames=8,
                                 image_size=(32, 32), batch_size=2, max_count=4)
    samples = list(read_feature_shards(shards))
    assert len(samples) == 5
    for sample, row in zip(samples, table.to_dict("records")):
        frames = read_video(row["path"]).frames
        expected = encode_video(frames.permute(3, 0, 1, 2).float().div(127.5).sub(1)[None])[0]
        assert sample["latents"].shape == (4, 8, 16, 16)
        assert torch.allclose(sample["latents"], expected, atol=1e-5)
        assert torch.equal(sample["text_emb"], torch.full((3, 4), float(len(row["text"]))))
        assert sample["text"] == row["text"]
    assert np.isclose(samples[0]["meta"]["fps"], 8.0)
