from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from conftest import texture
from torch.utils.data import DataLoader

from kinema.core.video import write_video
from kinema.data.datasets import VariableVideoTextDataset, VideoTextDataset, resize_crop, temporal_indices
from kinema.data.sampler import VariableVideoBatchSampler


def test_resize_crop_covers_then_centre_crops():
    video = torch.arange(2 * 1 * 4 * 8, dtype=torch.float32).reshape(2, 1, 4, 8)
    out = resize_crop(video, 4, 4)
    assert out.shape == (2, 1, 4, 4)
    assert torch.equal(out, video[..., 2:6])  # no resize needed: the middle columns


def test_temporal_indices():
    import random

    indices = temporal_indices(100, 16, 3, random.Random(0))
    assert len(indices) == 16 and np.all(np.diff(indices) == 3) and indices[-1] < 100
    assert temporal_indices(5, 8, 1, random.Random(0)) == [0, 1, 1, 2, 2, 3, 3, 4]


def _clips(tmp_path, sizes):
    rows = []
    for i, (t, h, w) in enumerate(sizes):
        frames = np.stack([np.roll(texture(h, w, i), k, axis=1) for k in range(t)])
        path = write_video(tmp_path / f"c{i}.mp4", frames, 8.0)
        rows.append({"path": str(path), "text": f"clip {i}", "num_frames": t, "height": h, "width": w})
    return pd.DataFrame(rows)


def test_video_text_dataset_item(tmp_path):
    table = _clips(tmp_path, [(12, 48, 64)])
    item = VideoTextDataset(table, num_frames=4, frame_interval=2, image_size=(32, 32), seed=0)[0]
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    assert -1 <= item["video"].min() and item["video"].max() <= 1
    assert item["text"] == "clip 0" and item["fps"] == 8.0


def test_bad_file_retries_another_row(tmp_path):
    table = _clips(tmp_path, [(6, 32, 32)])
    (tmp_path / "bad.mp4").write_text("no video")
    table = pd.concat([pd.DataFrame({"path": [str(tmp_path / "bad.mp4")], "text": ["bad"]}), table],
                      ignore_index=True)
    item = VideoTextDataset(table, num_frames=4, image_size=(32, 32), seed=0)[0]
    assert item["text"] == "clip 0"


def test_variable_dataset_with_bucket_sampler(tmp_path):
    table = _clips(tmp_path, [(20, 160, 208), (20, 160, 208), (20, 170, 200), (20, 160, 208)])
    config = {"144p": {8: (1.0, 2), 16: (1.0, 2)}}
    sampler = VariableVideoBatchSampler(table, config, seed=0)
    loader = DataLoader(VariableVideoTextDataset(table, seed=0), batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch["video"].shape == (2, 3, 16, 166, 221)  # 144p, ratio 0.75
        assert batch["num_frames"].tolist() == [16, 16]
