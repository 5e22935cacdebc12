"""`kinema train CONFIG --check`: resolve every name and check every path a config gives, without training.

The model is built as a skeleton on the meta device (no weights, no memory), so its kwargs and what it takes
(frame masks, joint image frames, its caption length) are checked as the trainer checks them. The VAE, text
encoder, objective and attention backend are resolved by name and their kwargs matched against what they
take; no weights are read. Each problem is one line naming the field, its value and the fix.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Optional

import yaml

from kinema.core import KinemaError

from .components import (
    MODEL_WEIGHT_FILES,
    build_scheduler,
    check_kwargs,
    construct_model,
    is_kinema_vae,
    pretrained_weights_file,
    registered,
    takes_path,
)
from .config import TrainConfig, validate
from .config_rules import field_problems
from .tracking import check_trackers_installed

# "owner/name": what transformers fetches from the Hugging Face hub when no such local folder exists
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_config(cfg: TrainConfig) -> list[str]:
    """Every problem found, one line each (empty: the config can train)."""
    problems: list[str] = []

    def attempt(fn: Callable, *args) -> Any:
        try:
            return fn(*args)
        except KinemaError as exc:
            problems.append(str(exc))
            return None

    wrong = field_problems(cfg)
    if wrong:  # a value of the wrong type or range: the checks below would read it as what it is not
        return wrong
    attempt(validate, cfg)
    attempt(check_trackers_installed, cfg.logging)
    if cfg.task == "vae":
        return problems + vae_task_problems(cfg, attempt)
    model = attempt(model_skeleton, cfg)
    contract = None if model is None else model.contract()
    if contract is not None:
        problems += contract_problems(cfg, contract)
    attempt(build_scheduler, cfg.scheduler)  # small: checks the kwargs and that it is a training objective
    attempt(check_vae, cfg)
    attempt(check_text_encoder, cfg)
    attempt(check_buckets, cfg)
    attempt(check_resume, cfg, model)
    return problems + path_problems(cfg)


def vae_task_problems(cfg: TrainConfig, attempt: Callable) -> list[str]:
    """task=vae: the VAE to train (built, so a bad config or folder is named) fits the clips, its loss builds,
    the checkpoint to resume exists; the diffusion parts (model, objective, text encoder) are not used."""
    from .vae_task import build_vae_loss, build_vae_to_train, check_vae_fits_data

    vae = attempt(build_vae_to_train, cfg)
    if vae is not None:
        attempt(check_vae_fits_data, cfg, vae)
    attempt(build_vae_loss, cfg)
    attempt(check_resume, cfg, None)
    return path_problems(cfg)


def effective_yaml(cfg: TrainConfig) -> str:
    """The config with every default filled in, as YAML that `kinema train` reads back unchanged."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None, width=120)


# ---------------------------------------------------------------------------------------------
# components
# ---------------------------------------------------------------------------------------------


def model_skeleton(cfg: TrainConfig):
    """The model on the meta device: its parameter names and shapes, no weights, no memory."""
    import torch

    from kinema.dit.contract import VideoModel

    m = cfg.model
    factory = registered("model", "model.name", m.name).obj
    with torch.device("meta"):
        model = construct_model(m, factory)
    if not isinstance(model, VideoModel):
        raise KinemaError(f"model.name={m.name!r} builds a {type(model).__name__}, which does not implement "
                          "kinema.dit.contract.VideoModel; name a kinema video model")
    return model


def contract_problems(cfg: TrainConfig, contract) -> list[str]:
    """What the data and text encoder ask of the model against what it takes."""
    from .masking import MaskGenerator

    d, name = cfg.data, cfg.model.name
    problems = []
    if d.mask_ratios and not contract.frame_mask:
        problems.append(f"data.mask_ratios is set but {name} takes no frame masks; unset data.mask_ratios")
    elif d.mask_ratios:
        try:
            MaskGenerator(d.mask_ratios)
        except KinemaError as exc:
            problems.append(f"data.mask_ratios: {exc}")
    if d.use_image_num and not contract.image_frames:
        problems.append(f"data.use_image_num={d.use_image_num} needs a joint image-video model (Latte); {name} is "
                        "not one: set data.use_image_num=0")
    if cfg.vae.name is None and d.source != "features" and contract.latent_channels != 3:
        problems.append(f"vae.name is unset, so {name} would learn RGB pixels, but it takes "
                        f"{contract.latent_channels} channels; name a VAE or set model.kwargs.in_channels=3")
    te = cfg.text_encoder
    length = te.kwargs.get("max_length")
    if te.name and length is not None and contract.caption_dropout and length != contract.caption_length:
        problems.append(f"text_encoder.kwargs.max_length={length} but {name} reads {contract.caption_length} "
                        "caption tokens (its null caption's length); set model.kwargs.model_max_length to match")
    return problems


def check_vae(cfg: TrainConfig) -> None:
    v = cfg.vae
    if v.name is None:
        if v.pretrained:
            raise KinemaError(f"vae.pretrained={v.pretrained!r} is set without vae.name; name the VAE it holds")
        return
    factory = registered("vae", "vae.name", v.name).obj
    if v.pretrained:
        if not os.path.isfile(os.path.join(v.pretrained, "config.json")):
            what = "does not exist" if not os.path.exists(v.pretrained) else "has no config.json"
            raise KinemaError(f"vae.pretrained={v.pretrained!r} {what}; point it at a VAE folder (config.json + "
                              "weights)")
        if is_kinema_vae(v.name):
            from kinema.vae.loading import load_vae

            check_kwargs("vae.kwargs", load_vae, v.kwargs, "a VAE folder", given=("folder",))
        elif not hasattr(factory, "from_pretrained"):
            raise KinemaError(f"vae.name={v.name!r} cannot load vae.pretrained={v.pretrained!r}: it has no "
                              "from_pretrained; unset vae.pretrained")
    else:
        check_kwargs("vae.kwargs", factory, v.kwargs, v.name)


def check_text_encoder(cfg: TrainConfig) -> None:
    te = cfg.text_encoder
    if te.name is None:
        if te.pretrained:
            raise KinemaError(f"text_encoder.pretrained={te.pretrained!r} is set without text_encoder.name; name "
                              "the encoder it holds")
        return
    factory = registered("text_encoder", "text_encoder.name", te.name).obj
    if not te.pretrained:
        check_kwargs("text_encoder.kwargs", factory, te.kwargs, te.name)
    elif hasattr(factory, "from_pretrained"):
        check_path("text_encoder.pretrained", te.pretrained, "a folder the encoder saved (save_pretrained)")
    elif takes_path(factory):
        if not os.path.exists(te.pretrained) and not HUB_ID.fullmatch(te.pretrained):
            raise KinemaError(f"text_encoder.pretrained={te.pretrained!r} does not exist and is not a hub id; point "
                              "it at a local model folder or a Hugging Face hub id (owner/name)")
        check_kwargs("text_encoder.kwargs", factory, te.kwargs, te.name, given=("path",))
    else:
        raise KinemaError(f"text_encoder.name={te.name!r} cannot load text_encoder.pretrained={te.pretrained!r}: "
                          "it takes no weights; unset text_encoder.pretrained")


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------


def check_path(field: str, value: Optional[str], fix: str) -> None:
    if value is not None and not os.path.exists(value):
        raise KinemaError(f"{field}={value!r} does not exist; point it at {fix}")


def path_problems(cfg: TrainConfig) -> list[str]:
    """model.pretrained, data.path and data.root: each missing one named (vae and text encoder: their checks)."""
    d, m = cfg.data, cfg.model
    problems = []
    if m.pretrained:
        if not os.path.exists(m.pretrained):
            problems.append(f"model.pretrained={m.pretrained!r} does not exist; point it at a model folder "
                            "(kinema dit convert, train-export's transformer/) or a checkpoint step folder")
        elif pretrained_weights_file(m.pretrained) is None:
            problems.append(f"model.pretrained={m.pretrained!r} holds no {' or '.join(MODEL_WEIGHT_FILES)}; point "
                            "it at a model folder or a checkpoint step folder")
    fixes = {"table": "a CSV/parquet table of clips (path, text[, num_frames, height, width]; kinema data convert, "
                      "kinema data info)",
             "features": "a folder of feature shards (kinema data precompute)"}
    for field, value, fix in (("data.path", d.path if d.source in fixes else None, fixes.get(d.source)),
                              ("data.root", d.root, "the folder the table's relative paths start from")):
        try:
            check_path(field, value, fix)
        except KinemaError as exc:
            problems.append(str(exc))
    return problems


def check_buckets(cfg: TrainConfig) -> None:
    if cfg.data.bucket_config:
        from kinema.data.buckets import parse_bucket_config

        try:
            parse_bucket_config(cfg.data.bucket_config)
        except KinemaError as exc:
            raise KinemaError(f"data.bucket_config: {exc}") from None


def check_resume(cfg: TrainConfig, model=None) -> None:
    """The run folder holds no other run; the checkpoint to resume is complete and fits the model (by the
    skeleton's parameter shapes against the checkpoint's header)."""
    from .checkpoint import check_fits, claim_run_folder, resolve_checkpoint, saved_shapes

    c = cfg.checkpoint
    claim_run_folder(c.dir, c.resume, c.overwrite)  # only looks: moving an old run aside is the trainer's
    if c.resume:
        try:
            path = resolve_checkpoint(c.dir, c.resume)
        except KinemaError as exc:
            raise KinemaError(f"checkpoint.resume={c.resume!r}: {exc}") from None
        if model is not None and getattr(cfg, "task", "diffusion") == "diffusion":  # the skeleton is the trained model
            check_fits(path, saved_shapes(path), {k: tuple(v.shape) for k, v in model.state_dict().items()},
                       getattr(model, "config", None))
