"""One aspect-ratio convention: the same height and width give the model the same ``ar`` from the synthetic,
table and feature sources and from the pipeline (height / width); the Open-Sora 1.1 training convention is a
named switch."""

import pandas as pd
import pytest
import torch
from kinema.core import KinemaError
from kinema.core.video import write_video
from kinema.data.shards import FeatureShardWriter
from tiny import tiny_config

from kinema.train.trainer import Trainer

HEIGHT, WIDTH = 16, 24


def _ar_seen_by_the_model(trainer) -> torch.Tensor:
    _, batch = next(iter(trainer.data))
    seen = {}
    hook = trainer.model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    try:
        trainer.loss(batch, 0)
    finally:
        hook.remove()
    return seen["ar"]


def _table(tmp_path):
    rows = []
    for i in range(4):
        frames = torch.randint(0, 255, (6, 20, 30, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        rows.append({"path": str(write_video(tmp_path / f"clip{i}.mp4", frames, fps=8)), "text": f"clip {i}"})
    table = tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return str(table)


def _features(tmp_path):
    with FeatureShardWriter(tmp_path / "features") as writer:
        for i in range(4):
            writer.write({"latents": torch.randn(3, 4, HEIGHT, WIDTH), "text_emb": torch.randn(16, 32)},
                         text=f"clip {i}", num_frames=4, height=HEIGHT, width=WIDTH, fps=8)
    return str(tmp_path / "features")


@pytest.mark.parametrize("source", ["synthetic", "table", "features"])
def test_every_source_conditions_on_height_over_width(tmp_path, source):
    data = {"source": source, "image_size": [HEIGHT, WIDTH], "holdout": 0, "num_samples": 4}
    if source == "table":
        data["path"] = _table(tmp_path)
    elif source == "features":
        data["path"] = _features(tmp_path)
    cfg = tiny_config(tmp_path / "run", "STDiT2", data=data, text_encoder={"name": None})
    if source != "features":
        cfg.text_encoder.name = "tiny-t5"
    ar = _ar_seen_by_the_model(Trainer(cfg))
    torch.testing.assert_close(ar, torch.full_like(ar, HEIGHT / WIDTH))


def test_the_pipeline_conditions_on_the_same_value():
    from kinema.sample.testing import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    seen = {}
    pipe.transformer.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    pipe("a cat", height=4 * HEIGHT, width=4 * WIDTH, num_inference_steps=1, output_type="latent")
    torch.testing.assert_close(seen["ar"], torch.full_like(seen["ar"], HEIGHT / WIDTH))


def test_open_sora_11_training_convention_is_an_explicit_switch(tmp_path):
    cfg = tiny_config(tmp_path / "run", "STDiT2", data={"image_size": [HEIGHT, WIDTH]},
                      model={"ar_convention": "width/height"})
    ar = _ar_seen_by_the_model(Trainer(cfg))
    torch.testing.assert_close(ar, torch.full_like(ar, WIDTH / HEIGHT))
    with pytest.raises(KinemaError, match="model.ar_convention='w/h' is not one of the choices; "
                                          "use height/width or width/height"):
        tiny_config(tmp_path / "bad", "STDiT2", model={"ar_convention": "w/h"})
