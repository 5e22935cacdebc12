"""Build the model, scheduler, VAE and text encoder named in a config, through the kinema registries."""

from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Optional

import torch
from torch import nn

from kinema.core import Entry, KinemaError, get_registry
from kinema.dit.contract import VideoModel

from .config import ModelConfig, SchedulerConfig, TextEncoderConfig, VaeConfig

# weight files a model.pretrained folder may hold: a save_pretrained / `kinema dit convert` folder, or a training
# checkpoint's step folder
MODEL_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
POSITION_TABLES = ("pos_embed", "pos_embed_temporal")  # buffers computed from the model's grid


def registered(kind: str, field: str, name: str) -> Entry:
    """The registry entry ``name`` of ``kind``; an unknown name is an error naming the config field."""
    registry = get_registry(kind)
    if name not in registry:
        raise KinemaError(f"{field}={name!r} is not registered; registered: {', '.join(registry.names())}")
    return registry.entry(name)


def check_kwargs(field: str, fn: Any, kwargs: dict, what: str, given: tuple[str, ...] = ()) -> None:
    """Keys of ``kwargs`` that ``fn`` does not take are an error (nothing to check if it takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n not in given and p.kind is not p.VAR_POSITIONAL]
    _refuse_unknown(field, kwargs, valid, what)


def _refuse_unknown(field: str, kwargs: dict, valid: list[str], what: str) -> None:
    unknown = sorted(set(kwargs) - set(valid), key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f"; did you mean {field}.{close[0]}?" if close else ""
        raise KinemaError(f"{field} has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}; "
                          f"{what} takes: {', '.join(valid)}{hint}")


def declared_config(factory: Any) -> Optional[list[str]]:
    """The config keys a model class declares (diffusers' ``ConfigMixin`` + ``@register_to_config``: what its
    config.json holds), for a class or a registered flavour of one; None if it declares none."""
    from diffusers.configuration_utils import ConfigMixin

    cls = getattr(factory, "cls", factory)  # kinema.dit.flavours.Flavour: a class with a size's defaults
    if not (isinstance(cls, type) and issubclass(cls, ConfigMixin)):
        return None
    keys = ConfigMixin._get_init_keys(cls) - {"self", "kwargs", "args"} - set(cls.ignore_for_config)
    return sorted(keys)


def check_model_kwargs(cfg: ModelConfig, factory: Any) -> None:
    """A misspelt model.kwargs key is refused before anything is built, naming the model's config keys."""
    declared = declared_config(factory)
    if declared is None:
        check_kwargs("model.kwargs", factory, cfg.kwargs, cfg.name)
    else:
        _refuse_unknown("model.kwargs", cfg.kwargs, declared, cfg.name)


def construct_model(cfg: ModelConfig, factory: Any) -> nn.Module:
    """``factory(**model.kwargs)``; a value it refuses is a one-line error naming the kwargs."""
    check_model_kwargs(cfg, factory)
    kwargs = dict(cfg.kwargs)
    if cfg.attention is not None:
        registered("attention_backend", "model.attention", cfg.attention)
        kwargs["attention"] = cfg.attention
    try:
        return factory(**kwargs)
    except KinemaError as exc:
        raise KinemaError(f"model.kwargs={cfg.kwargs}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError) as exc:  # a value it refuses
        raise KinemaError(f"model.name={cfg.name!r} cannot be built with model.kwargs={cfg.kwargs}: "
                          f"{' '.join(str(exc).split()) or type(exc).__name__}; fix the value") from None


def build_model(cfg: ModelConfig) -> nn.Module:
    factory = registered("model", "model.name", cfg.name).obj
    model = construct_model(cfg, factory)
    if not isinstance(model, VideoModel):
        raise KinemaError(f"model {cfg.name!r} builds a {type(model).__name__}, which does not implement "
                          "kinema.dit.contract.VideoModel (contract(), null_caption(), model_inputs())")
    if cfg.pretrained:
        load_pretrained_weights(model, cfg.pretrained)
    return model.float()


def pretrained_weights_file(path: str) -> Optional[str]:
    """The weights file ``model.pretrained`` names (a folder's or the file itself); None if there is none."""
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in MODEL_WEIGHT_FILES if os.path.isfile(os.path.join(path, n))]
        return found[0] if found else None
    return path if os.path.isfile(path) else None


def load_pretrained_weights(model: nn.Module, folder: str) -> None:
    """Weights of a ``save_pretrained`` folder, a checkpoint step folder or a .safetensors file into a built model."""
    from safetensors.torch import load_file

    path = pretrained_weights_file(folder)
    if path is None:
        raise KinemaError(f"model.pretrained={folder!r} holds no {' or '.join(MODEL_WEIGHT_FILES)}; point it at a "
                          "model folder (kinema dit convert, train-export's transformer/) or a checkpoint step folder")
    state = load_file(path)
    # fixed sin-cos position tables follow the model's grid, not the file's: a stage on larger clips starts from the
    # previous stage's weights (upstream drops these tables when it loads a checkpoint)
    own = model.state_dict()
    regridded = {k for k, v in state.items()
                 if k.rsplit(".", 1)[-1] in POSITION_TABLES and k in own and v.shape != own[k].shape}
    for key in regridded:
        del state[key]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise KinemaError(f"model.pretrained={folder!r} does not fit model.kwargs ({first}); build the model with "
                          "the kwargs it was saved with") from None
    missing = [k for k in missing if k not in regridded]
    if missing or unexpected:
        raise KinemaError(
            f"model.pretrained={folder} does not fit model kwargs: missing {missing[:3]}, unexpected {unexpected[:3]}; "
            "build the model with the kwargs it was saved with"
        )


def build_scheduler(cfg: SchedulerConfig):
    """The training objective named by ``scheduler.name`` (``iddpm``, ``rflow`` or a plugin's)."""
    from kinema.sample.schedulers import TrainingObjective

    factory = registered("scheduler", "scheduler.name", cfg.name).obj
    try:
        objective = factory(**cfg.kwargs)
    except (TypeError, ValueError) as exc:
        raise KinemaError(f"scheduler.kwargs={cfg.kwargs} do not fit {cfg.name}: {exc}") from None
    if not isinstance(objective, TrainingObjective):
        raise KinemaError(f"scheduler.name={cfg.name} is a sampler ({type(objective).__name__}); training needs an "
                          "objective: iddpm (its pipeline can sample with ddim, dpm-solver, ...) or rflow")
    return objective


def takes_path(factory: Any) -> bool:
    """Whether a factory without from_pretrained loads from a ``path`` argument (t5, clip: a folder or hub id)."""
    try:
        return "path" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _build_frozen(kind: str, name: Optional[str], pretrained: Optional[str], kwargs: dict) -> Any:
    if name is None:
        return None
    factory = registered(kind, f"{kind}.name", name).obj
    if pretrained and hasattr(factory, "from_pretrained"):
        component = factory.from_pretrained(pretrained, **kwargs)
    elif pretrained and takes_path(factory):
        component = factory(path=pretrained, **kwargs)
    elif pretrained:
        raise KinemaError(f"{kind}.name={name!r} cannot load {kind}.pretrained={pretrained!r}: it has no "
                          "from_pretrained and takes no path; unset it")
    else:
        component = factory(**kwargs)
    if isinstance(component, nn.Module):
        component.eval().requires_grad_(False)
    return component


def is_kinema_vae(name: str) -> bool:
    """kinema-vae's own VAEs load every folder layout it reads (kinema, upstream Open-Sora-Plan, SD AutoencoderKL)."""
    return registered("vae", "vae.name", name).module.startswith("kinema.vae.")


def build_vae(cfg: VaeConfig):
    if cfg.name and cfg.pretrained and is_kinema_vae(cfg.name):
        from kinema.vae.loading import load_vae

        cls = registered("vae", "vae.name", cfg.name).obj
        try:
            vae = load_vae(cfg.pretrained, **cfg.kwargs)
        except TypeError as exc:
            raise KinemaError(f"vae.kwargs={cfg.kwargs} do not fit a VAE folder: {exc}; it takes attn_impl, "
                              "micro_batch_size") from None
        if not isinstance(vae, cls):
            raise KinemaError(f"vae.pretrained={cfg.pretrained!r} holds a {type(vae).__name__}, not a {cls.__name__} "
                              f"(vae.name={cfg.name!r}); name the VAE it holds")
        return vae.eval().requires_grad_(False)
    return _build_frozen("vae", cfg.name, cfg.pretrained, cfg.kwargs)


def build_text_encoder(cfg: TextEncoderConfig):
    return _build_frozen("text_encoder", cfg.name, cfg.pretrained, cfg.kwargs)


def move(component: Any, device: torch.device) -> Any:
    if component is not None and hasattr(component, "to"):
        component.to(device)
    return component
