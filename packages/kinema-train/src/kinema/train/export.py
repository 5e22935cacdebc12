"""Export a training checkpoint as a diffusers-layout pipeline folder (`kinema sample --model` loads it).

The transformer gets the EMA weights (default) or the raw ones; the scheduler, VAE and text encoder
are rebuilt from the config stored in the checkpoint. Another VAE may replace the trained-with one only if it
computes the same latents: a decoder retrained on its own (`kinema vae train --decoder-only`).
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
                    text_encoder_by_name: bool = False, defaults: dict | None = None,
                    vae: str | os.PathLike | None = None) -> Path:
    """``text_encoder_by_name``: the folder names the registered text encoder (text_encoder.name/kwargs of the
    config) instead of holding a copy of its weights. ``defaults``: the pipeline's sampling defaults
    (num_frames, height, width, fps, guidance_scale, ...). ``vae``: a VAE folder to ship instead of the
    trained-with one (checked to compute the same latents)."""
    from kinema.sample.pipeline import KinemaVideoPipeline

    path = Path(checkpoint)
    if not (path / "state.json").exists():
        raise KinemaError(f"{path} is not a complete checkpoint (no state.json); pass a step-* folder")
    cfg = from_dict(ckpt.load_meta(path)["config"])
    cfg.model.pretrained = None
    pipeline_vae = build_vae(cfg.vae) if vae is None else _same_latents_vae(cfg, vae)
    with torch.random.fork_rng():
        model = build_model(cfg.model)
    state = ckpt.load_model_state(path)
    if weights == "ema":
        if not (path / "ema.safetensors").exists():
            raise KinemaError(f"{path} has no EMA weights (optim.ema_decay was 0); export with --weights model")
        state.update(ckpt.load_model_state(path, "ema"))
    model.load_state_dict(state)
    from kinema.sample.text_encoders import HFTextEncoder, RegisteredTextEncoder

    objective = build_scheduler(cfg.scheduler)
    if text_encoder_by_name:
        if not cfg.text_encoder.name or cfg.text_encoder.pretrained:
            raise KinemaError("text_encoder_by_name needs a registered text encoder built from its name alone "
                              "(text_encoder.name set, text_encoder.pretrained unset)")
        text_encoder, tokenizer = RegisteredTextEncoder(cfg.text_encoder.name, dict(cfg.text_encoder.kwargs)), None
    else:
        built = build_text_encoder(cfg.text_encoder)
        # a transformers encoder is stored as diffusers stores one: the model and its tokenizer
        text_encoder, tokenizer = (built.model, built.tokenizer) if isinstance(built, HFTextEncoder) else (built, None)
    steps = {"num_inference_steps": objective.config.num_inference_steps}
    pipe = KinemaVideoPipeline(transformer=model.eval(), scheduler=objective.sampler(), vae=pipeline_vae,
                               text_encoder=text_encoder, tokenizer=tokenizer, defaults={**steps, **(defaults or {})},
                               prediction_type=objective.prediction_type, cfg_channel=objective.config.cfg_channel)
    pipe.save_pretrained(output)
    return Path(output)


def _latent_side(vae) -> tuple[dict, list]:
    """What a VAE's latents depend on: the tensors of its encoder modules and its calibration."""
    tensors = {f"{i}.{name}": tensor for i, module in enumerate(vae.encoder_modules())
               for name, tensor in module.state_dict().items()}
    return tensors, [getattr(vae.config, key, None) for key in ("latents_mean", "latents_std", "scaling_factor")]


def _same_latents_vae(cfg, folder: str | os.PathLike):
    """The VAE in ``folder``, if it computes exactly the latents the transformer was trained on: the same encoder
    weights and the same calibration as the checkpoint's VAE (vae.pretrained), so only its decoder differs."""
    import dataclasses

    replacement = build_vae(dataclasses.replace(cfg.vae, pretrained=str(folder)))
    (old, old_calibration), (new, new_calibration) = _latent_side(build_vae(cfg.vae)), _latent_side(replacement)
    same = old_calibration == new_calibration and old.keys() == new.keys() and all(
        old[k].shape == new[k].shape and torch.equal(old[k], new[k]) for k in old)
    if not same:
        raise KinemaError(f"--vae {str(folder)!r} computes other latents than the VAE the checkpoint was trained with "
                          f"({cfg.vae.pretrained!r}): its encoder or calibration differs. Only a decoder "
                          "retrained with `kinema vae train --decoder-only` (then calibrated alike) can replace it")
    return replacement
