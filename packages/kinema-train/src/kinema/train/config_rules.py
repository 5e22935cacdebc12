"""A rule for every field of the training config, checked before anything is built.

Each rule takes ``(value, key)`` and returns the value to keep (``check_number`` turns ``2.0`` into ``2``
for counts) or raises a one-line ``KinemaError`` naming the value, the key and the fix. A test walks
every dataclass and fails on a field without a rule, so a new field cannot skip validation.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional

from kinema.core import KinemaError
from kinema.core.validate import MAX_SEED, check_number

Rule = Callable[[Any, str], Any]


def number(minimum: Optional[float] = None, maximum: Optional[float] = None, *, integer: bool = False,
           min_open: bool = False, fix: str = "") -> Rule:
    def rule(value, key):
        return check_number(value, key, minimum=minimum, maximum=maximum, min_open=min_open, integer=integer,
                            fix=fix)

    return rule


def count(minimum: int = 0, fix: str = "") -> Rule:
    return number(minimum, integer=True, fix=fix)


def seed() -> Rule:
    return number(0, MAX_SEED, integer=True, fix="use a seed in [0, 2**63 - 1]")


def probability(fix: str = "") -> Rule:
    return number(0.0, 1.0, fix=fix)


def flag() -> Rule:
    def rule(value, key):
        if not isinstance(value, bool):
            raise KinemaError(f"{key}={value!r} is not a boolean; write true or false")
        return value

    return rule


def text(optional: bool = False, fix: str = "") -> Rule:
    """A non-empty string (or None where the field may be unset)."""

    def rule(value, key):
        if value is None and optional:
            return value
        if not isinstance(value, str) or not value.strip():
            unset = " or leave it unset (null)" if optional else ""
            raise KinemaError(f"{key}={value!r} is not a non-empty string; {fix or 'write a name or path'}{unset}")
        return value

    return rule


def one_of(options: Iterable[Optional[str]], fix: str = "") -> Rule:
    options = tuple(options)

    def rule(value, key):
        if not isinstance(value, (str, type(None))) or value not in options:
            names = " or ".join("null" if o is None else o for o in options)
            raise KinemaError(f"{key}={value!r} is not one of the choices; use {names}{'; ' + fix if fix else ''}")
        return value

    return rule


def mapping(optional: bool = False) -> Rule:
    """Free-form settings (kwargs, bucket tables): string keys, and no NaN or inf anywhere inside."""

    def rule(value, key):
        if value is None and optional:
            return value
        if not isinstance(value, dict):
            raise KinemaError(f"{key}={value!r} is not a mapping; write {{name: value, ...}}"
                              f"{' or leave it unset (null)' if optional else ''}")
        for sub in value:
            if not isinstance(sub, str):
                raise KinemaError(f"{key} has the key {sub!r}, which is not a name; keys of {key} are names")
        finite(value, key)
        return value

    return rule


def finite(value: Any, key: str) -> None:
    """NaN or inf anywhere in a nested value is an error naming where."""
    if isinstance(value, float) and not math.isfinite(value):
        raise KinemaError(f"{key}={value!r} is not a finite number; write a finite value")
    if isinstance(value, dict):
        for sub, item in value.items():
            finite(item, f"{key}.{sub}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            finite(item, key)


def optional(rule: Rule) -> Rule:
    return lambda value, key: value if value is None else rule(value, key)


def _prompts(value, key):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise KinemaError(f"{key}={value!r} is not a list of prompts; write [\"a prompt\", ...]")
    return list(value)


def sequence(length: int, item: Rule, what: str) -> Rule:
    def rule(value, key):
        if not isinstance(value, (list, tuple)) or len(value) != length:
            raise KinemaError(f"{key}={value!r} is not {what}; write [{', '.join(['...'] * length)}]")
        return [item(v, f"{key}[{i}]") for i, v in enumerate(value)]

    return rule


def backend() -> Rule:
    names = one_of((None, "gloo", "nccl", "mpi", "ucc"), "unset it for nccl on CUDA, gloo on CPU")

    def rule(value, key):
        names(value, key)
        if value == "nccl":
            import torch

            if not torch.cuda.is_available():
                raise KinemaError(f"{key}='nccl' needs CUDA GPUs and this machine (or torch build) has none; "
                                  "use gloo or leave it unset")
        return value

    return rule


def _mixed_precision() -> Rule:
    return one_of(("auto", "fp32", "bf16", "bf16-params"), "auto is bf16 autocast on CUDA and fp32 on CPU")


def _ar_conventions():
    from kinema.dit.contract import AR_CONVENTIONS

    return AR_CONVENTIONS


def _ar_convention() -> Rule:
    def rule(value, key):
        return one_of(_ar_conventions(), "height/width unless fine-tuning Open-Sora 1.1's released weights")(value, key)

    return rule


# section -> field -> rule
RULES: dict[str, dict[str, Rule]] = {
    "model": {
        "name": text(fix="name a registered model (`kinema plugins` lists them)"),
        "kwargs": mapping(),
        "pretrained": text(optional=True, fix="point it at a model folder or a checkpoint step folder"),
        "attention": text(optional=True, fix="name a registered attention backend"),
        "gradient_checkpointing": flag(),
        "compile": flag(),
        "ar_convention": _ar_convention(),
    },
    "vae": {
        "name": text(optional=True, fix="name a registered VAE"),
        "pretrained": text(optional=True, fix="point it at a VAE folder"),
        "kwargs": mapping(),
    },
    "text_encoder": {
        "name": text(optional=True, fix="name a registered text encoder"),
        "pretrained": text(optional=True, fix="point it at a model folder or a hub id"),
        "kwargs": mapping(),
    },
    "scheduler": {
        "name": text(fix="name a training objective: iddpm or rflow"),
        "kwargs": mapping(),
    },
    "data": {
        "source": one_of(("synthetic", "table", "features")),
        "path": text(optional=True, fix="point it at a CSV/parquet table or a folder of feature shards"),
        "root": text(optional=True, fix="point it at the folder the table's relative paths start from"),
        "num_samples": count(1, "set a number of synthetic clips >= 1"),
        "num_frames": count(1, "set the frames per clip"),
        "frame_interval": count(1, "1 takes every frame, 2 every other one"),
        "image_size": sequence(2, number(1, 1 << 16, integer=True, fix="write [height, width] in pixels"),
                               "a [height, width] pair of whole numbers >= 1"),
        "bucket_config": mapping(optional=True),
        "batch_size": count(1, "set the global batch size"),
        "use_image_num": count(0, "0 trains on videos only"),
        "caption_dropout": probability("it is the probability of the null caption"),
        "mask_ratios": mapping(optional=True),
        "num_workers": count(0, "0 loads in the main process"),
        "holdout": count(0, "0 keeps no held-out samples"),
    },
    "optim": {
        "lr": number(0, min_open=True, fix="use a small positive learning rate such as 1e-4"),
        "betas": sequence(2, number(0, 1, fix="each AdamW beta is in [0, 1), e.g. [0.9, 0.999]"),
                          "a [beta1, beta2] pair"),
        "eps": number(0, 1, min_open=True, fix="AdamW's epsilon is a small positive number such as 1e-8"),
        "weight_decay": number(0, fix="0 disables weight decay"),
        "grad_clip": number(0, fix="0 disables clipping"),
        "ema_decay": number(0, 1, fix="0 disables the EMA; typical values are 0.99 to 0.9999"),
        "max_steps": count(0, "set the number of optimizer steps to train to"),
        "warmup_steps": count(0, "0 disables the warm-up"),
        "decay_steps": count(0, "0 disables the decay"),
        "min_lr_factor": probability("the decay ends at lr * min_lr_factor"),
        "seed": seed(),
        "mixed_precision": _mixed_precision(),
        "shard_optimizer": flag(),
    },
    "parallel": {
        "tensor": count(1, "1 disables tensor parallelism"),
        "sequence": count(1, "1 disables sequence parallelism"),
        "backend": backend(),
        "data": one_of(("ddp", "fsdp")),
    },
    "checkpoint": {
        "dir": text(fix="point it at the run folder"),
        "every": count(1, "save every N steps, N >= 1 (a run saves at its end as well)"),
        "keep": count(0, "0 keeps every checkpoint"),
        "resume": text(optional=True, fix="write latest or a step-* checkpoint folder"),
        "overwrite": flag(),
    },
    "logging": {
        "every": count(1, "log every N steps, N >= 1"),
        "csv": flag(),
        "tensorboard": flag(),
        "progress": flag(),
        "wandb": flag(),
        "wandb_project": text(fix="name the Weights & Biases project"),
        "wandb_mode": one_of((None, "online", "offline", "disabled")),
        "eval_every": count(0, "0 disables the held-out evaluation"),
        "sample_every": count(0, "0 disables logged samples"),
        "sample_prompts": lambda value, key: _prompts(value, key),
        "sample_seed": seed(),
        "sample_steps": count(1, "set the denoising steps of the logged samples"),
        "sample_guidance_scale": optional(number(0, fix="leave it unset for the pipeline's default")),
        "sample_clips": count(1, "set the clips reconstructed per sampling step"),
    },
    "vae_loss": {
        "kl_weight": number(0, fix="use a small weight such as 1e-6"),
        "reconstruction": one_of(("l1", "l2")),
        "perceptual": one_of((None, "lpips-vgg", "lpips-alex")),
        "perceptual_weight": number(0, fix="0 disables the perceptual loss"),
        "lpips_backbone": text(optional=True, fix="point it at the LPIPS backbone weights"),
        "lpips_linear": text(optional=True, fix="point it at the LPIPS linear-layer weights"),
        "discriminator": one_of((None, "2d", "3d")),
        "disc_start": count(0, "the step the discriminator starts at"),
        "disc_weight": number(0, fix="0 disables the adversarial loss"),
        "latent_noise": number(0, fix="0 adds no noise"),
        "decoder_only": flag(),
    },
}

# fields of the config's root that are values, not sections
ROOT_RULES: dict[str, Rule] = {
    "task": one_of(("diffusion", "vae")),
}


def check_fields(config) -> None:
    """Every field of every section against its rule; the checked value is stored back."""
    problems = field_problems(config, first_only=True)
    if problems:
        raise KinemaError(problems[0])


def field_problems(config, first_only: bool = False) -> list[str]:
    """Each field that breaks its rule, one line each (``check_fields`` raises the first)."""
    import dataclasses

    problems: list[str] = []
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        if dataclasses.is_dataclass(values):
            fields = [(values, f.name, f"{section.name}.{f.name}", RULES.get(section.name, {}).get(f.name))
                      for f in dataclasses.fields(values)]
        else:  # a value at the root (task)
            fields = [(config, section.name, section.name, ROOT_RULES.get(section.name))]
        for owner, name, key, rule in fields:
            try:
                if rule is None:  # a field added without a rule (a test catches it): at least no NaN or inf
                    finite(getattr(owner, name), key)
                else:
                    setattr(owner, name, rule(getattr(owner, name), key))
            except KinemaError as exc:
                problems.append(str(exc))
                if first_only:
                    return problems
    return problems


def check_relations(config) -> None:
    """Rules between fields."""
    d, o, c = config.data, config.optim, config.checkpoint
    if d.source in ("table", "features") and not d.path:
        what = "a CSV/parquet table of clips" if d.source == "table" else "a folder of feature shards"
        raise KinemaError(f"data.path is unset but data.source={d.source} reads one; point it at {what}")
    if d.source == "synthetic" and d.num_samples < d.batch_size:
        raise KinemaError(f"data.num_samples={d.num_samples} is less than data.batch_size={d.batch_size}; make "
                          "num_samples at least the batch size")
    if o.ema_decay == 1:
        raise KinemaError("optim.ema_decay=1.0 would never move the EMA; use a value below 1 (0 disables it)")
    if o.betas[1] == 1 or o.betas[0] == 1:
        raise KinemaError(f"optim.betas={o.betas} must be below 1; e.g. [0.9, 0.999]")
    if o.decay_steps > o.max_steps:
        raise KinemaError(f"optim.decay_steps={o.decay_steps} must be in [0, optim.max_steps={o.max_steps}]; decay "
                          "over at most the whole run")
    if c.resume and c.overwrite:
        raise KinemaError(f"checkpoint.resume={c.resume!r} and checkpoint.overwrite=true contradict each other; "
                          "resume the run or start it over, not both")
    parallel = config.parallel
    if o.mixed_precision == "bf16-params" and parallel.data != "fsdp":
        raise KinemaError("optim.mixed_precision=bf16-params keeps fp32 master weights in FSDP2; "
                          "set parallel.data=fsdp (it runs on one process too)")
    if parallel.data == "fsdp" and (parallel.tensor > 1 or o.shard_optimizer):
        raise KinemaError("parallel.data=fsdp shards weights and AdamW states itself and does not compose with "
                          "megatron's tensor-parallel layers; use parallel.tensor=1 and optim.shard_optimizer=false "
                          "(or parallel.data=ddp)")
    if parallel.data == "fsdp" and parallel.sequence > 1:
        raise KinemaError("parallel.data=fsdp with parallel.sequence > 1 is not supported yet; "
                          "use parallel.data=ddp for sequence parallelism")
