"""Export a training checkpoint as a diffusers-layout pipeline folder (`kinema sample --model` loads it).

The transformer gets the EMA weights (default) or the raw ones; the scheduler, VAE and text encoder
are rebuilt from the config stored in the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from kinema.core import KinemaError

from . import checkpoint as ckpt
from .components import build_model, build_scheduler, build_text_encoder, build_vae
from .config import from_dict


def export_pipeline(checkpoint: str | os.PathLike, output: str | os.PathLike, weights: str = "ema",
                    text_encoder_by_name: bool = False, defaults: dict | None = None) -> Path:
    """``text_encoder_by_name``: the folder names the registered text encoder (text_encoder.name/kwargs of the
    config) instead of holding a copy of its weights. ``defaults``: the pipeline's sampling defaults
    (num_frames, height, width, fps, guidance_scale, ...)."""
    from kinema.sample.pipeline import DEFAULTS, TEXT_ENCODER_REF
    from kinema.sample.pipeline_folder import write_folder

    path = Path(checkpoint)
    if not (path / "state.json").exists():
        raise KinemaError(f"{path} is not a complete checkpoint (no state.json); pass a step-* folder")
    cfg = from_dict(ckpt.load_meta(path)["config"])
    cfg.model.pretrained = None
    with torch.random.fork_rng():
        model = build_model(cfg.model)
    state = ckpt.load_model_state(path)
    if weights == "ema":
        if not (path / "ema.safetensors").exists():
            raise KinemaError(f"{path} has no EMA weights (optim.ema_decay was 0); export with --weights model")
        state.update(ckpt.load_model_state(path, "ema"))
    model.load_state_dict(state)
    unknown = set(defaults or {}) - set(DEFAULTS)
    if unknown:
        raise KinemaError(f"unknown pipeline defaults {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    extra: dict = {"_kinema_defaults": {**DEFAULTS, **defaults}} if defaults else {}
    if text_encoder_by_name:
        if not cfg.text_encoder.name or cfg.text_encoder.pretrained:
            raise KinemaError("text_encoder_by_name needs a registered text encoder built from its name alone "
                           "(text_encoder.name set, text_encoder.pretrained unset)")
        extra[TEXT_ENCODER_REF] = {"name": cfg.text_encoder.name, "kwargs": dict(cfg.text_encoder.kwargs)}
        text_encoder = None
    else:
        text_encoder = build_text_encoder(cfg.text_encoder)
    components = {
        "transformer": model.eval(),
        "scheduler": build_scheduler(cfg.scheduler),
        "vae": build_vae(cfg.vae),
        # kinema-sample's HF text encoders wrap a transformers model and its tokenizer
        "text_encoder": getattr(text_encoder, "model", text_encoder),
        "tokenizer": getattr(text_encoder, "tokenizer", None),
    }
    write_folder(Path(output), components, extra=extra)
    return Path(output)
