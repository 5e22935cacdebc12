"""Tiny configs of the real classes shared by the tests (well under 1M parameters, fp32, CPU)."""

from __future__ import annotations

from kinema.train.config import load_config

MODELS = {
    "STDiT": {"name": "STDiT-S/2", "kwargs": {"input_size": [4, 16, 16], "hidden_size": 32, "depth": 2,
                                              "num_heads": 4, "in_channels": 3, "caption_channels": 32,
                                              "model_max_length": 16}},
    "STDiT2": {"name": "STDiT2-S/2", "kwargs": {"hidden_size": 48, "depth": 2, "num_heads": 4, "in_channels": 3,
                                                "caption_channels": 32, "model_max_length": 16, "qk_norm": True,
                                                "input_sq_size": 16}},
}


def tiny_config(tmp_dir, flavour: str = "STDiT2", **sections):
    """Pixel-space training on 4-frame 16x16 synthetic clips with the tiny random T5 (no VAE)."""
    values = {
        "model": dict(MODELS[flavour]),
        "text_encoder": {"name": "tiny-t5", "kwargs": {"max_length": 16, "hidden_size": 32}},
        "scheduler": {"name": "iddpm"},
        "data": {"source": "synthetic", "num_samples": 16, "holdout": 8, "num_frames": 4, "image_size": [16, 16],
                 "batch_size": 4, "caption_dropout": 0.1},
        "optim": {"lr": 1e-3, "max_steps": 6, "seed": 0},
        "checkpoint": {"dir": str(tmp_dir), "every": 3, "keep": 5},
        "logging": {"every": 1, "progress": False},
    }
    for section, updates in sections.items():
        values.setdefault(section, {}).update(updates)  # one level deep: sections are flat
    from kinema.train.config import from_dict, validate

    cfg = from_dict(values)
    validate(cfg)
    return cfg


__all__ = ["MODELS", "load_config", "tiny_config"]
