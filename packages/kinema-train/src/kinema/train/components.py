"""Build the model, scheduler, VAE and text encoder named in a config, through the kinema registries."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import nn

from kinema.core import KinemaError, lookup
from kinema.dit.contract import VideoModel

from .config import ModelConfig, SchedulerConfig, TextEncoderConfig, VaeConfig


def build_model(cfg: ModelConfig) -> nn.Module:
    factory = lookup("model", cfg.name)
    kwargs = dict(cfg.kwargs)
    if cfg.attention is not None:
        kwargs["attention"] = cfg.attention
    model = factory(**kwargs)
    if not isinstance(model, VideoModel):
        raise KinemaError(f"model {cfg.name!r} builds a {type(model).__name__}, which does not implement "
                          "kinema.dit.contract.VideoModel (contract(), null_caption(), model_inputs())")
    if cfg.pretrained:
        load_pretrained_weights(model, cfg.pretrained)
    return model.float()


def load_pretrained_weights(model: nn.Module, folder: str) -> None:
    """Weights of a ``save_pretrained`` folder (or a .safetensors file) into an already built model."""
    from safetensors.torch import load_file

    path = folder
    if os.path.isdir(folder):
        path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    if not os.path.exists(path):
        raise KinemaError(f"model.pretrained={folder}: no {path}; point it at a save_pretrained folder")
    state = load_file(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KinemaError(
            f"model.pretrained={folder} does not fit model kwargs: missing {missing[:3]}, unexpected {unexpected[:3]}; "
            "build the model with the kwargs it was saved with"
        )


def build_scheduler(cfg: SchedulerConfig):
    """The training objective named by ``scheduler.name`` (``iddpm``, ``rflow`` or a plugin's)."""
    from kinema.sample.schedulers import TrainingObjective

    objective = lookup("scheduler", cfg.name)(**cfg.kwargs)
    if not isinstance(objective, TrainingObjective):
        raise KinemaError(f"scheduler.name={cfg.name} is a sampler ({type(objective).__name__}); training needs an "
                          "objective: iddpm (its pipeline can sample with ddim, dpm-solver, ...) or rflow")
    return objective


def _build_frozen(kind: str, name: Optional[str], pretrained: Optional[str], kwargs: dict) -> Any:
    if name is None:
        return None
    entry = lookup(kind, name)
    if pretrained:
        if not hasattr(entry, "from_pretrained"):
            raise KinemaError(f"{kind} {name!r} cannot load {pretrained}: it has no from_pretrained")
        component = entry.from_pretrained(pretrained, **kwargs)
    else:
        component = entry(**kwargs)
    if isinstance(component, nn.Module):
        component.eval().requires_grad_(False)
    return component


def build_vae(cfg: VaeConfig):
    return _build_frozen("vae", cfg.name, cfg.pretrained, cfg.kwargs)


def build_text_encoder(cfg: TextEncoderConfig):
    return _build_frozen("text_encoder", cfg.name, cfg.pretrained, cfg.kwargs)


def move(component: Any, device: torch.device) -> Any:
    if component is not None and hasattr(component, "to"):
        component.to(device)
    return component
