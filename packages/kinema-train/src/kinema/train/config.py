"""The training config: nested dataclasses loaded from YAML, overridden with ``key.sub=value``.

Every key is checked: a misspelt one is an error that lists the valid keys of its section, so a
typo never silently trains with a default (Open-Sora 1.1's configs lost flash attention that way).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from kinema.core import KinemaError


@dataclass
class ModelConfig:
    name: str = "STDiT2-XL/2"  # a registered model flavour (`kinema plugins` lists them)
    kwargs: dict = field(default_factory=dict)  # constructor overrides, e.g. {depth: 2, hidden_size: 48}
    pretrained: Optional[str] = None  # a model folder (save_pretrained) to start from
    attention: Optional[str] = None  # attention backend name; None = the model's default
    gradient_checkpointing: bool = False  # recompute each block in backward (per-block checkpointing)
    compile: bool = False  # torch.compile each transformer block (regional: seconds to compile, same weights)
    # the aspect-ratio condition (STDiT2): "height/width", as everywhere in kinema and at sampling; set
    # "width/height" only to fine-tune Open-Sora 1.1's released weights with the convention they were trained with
    ar_convention: str = "height/width"


@dataclass
class VaeConfig:
    name: Optional[str] = None  # registered VAE; None = the data are latents already (features or pixels)
    pretrained: Optional[str] = None
    kwargs: dict = field(default_factory=dict)


@dataclass
class TextEncoderConfig:
    name: Optional[str] = None  # registered text encoder; None = the data carry caption embeddings
    pretrained: Optional[str] = None
    kwargs: dict = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    name: str = "iddpm"
    kwargs: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    # source: "synthetic" (kinema-data's moving shapes, rendered in memory), "table" (a CSV/parquet of
    # clips: path, text[, num_frames, height, width]), "features" (precomputed latent shards)
    source: str = "synthetic"
    path: Optional[str] = None
    root: Optional[str] = None
    num_samples: int = 64  # synthetic only
    num_frames: int = 16
    frame_interval: int = 1
    image_size: list = field(default_factory=lambda: [32, 32])
    bucket_config: Optional[dict] = None  # Open-Sora 1.1 buckets {resolution: {frames: [keep_prob, batch]}}
    batch_size: int = 4  # global batch (split over data-parallel ranks); per bucket when bucketed
    use_image_num: int = 0  # joint image-video batches (Latte): still frames appended per video
    caption_dropout: float = 0.1  # probability of the null caption (classifier-free guidance)
    mask_ratios: Optional[dict] = None  # Open-Sora 1.1 masking: {mask_no: 0.75, mask_quarter_random: ...}
    num_workers: int = 0
    holdout: int = 0  # samples kept out of training for the held-out loss (synthetic)


@dataclass
class OptimConfig:
    lr: float = 2e-5
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.9999  # fp32 EMA of the weights; 0 disables it
    max_steps: int = 1000
    warmup_steps: int = 0  # linear warm-up, then constant (upstream: none)
    decay_steps: int = 0  # linear decay over the last decay_steps steps before max_steps (0: none, upstream)
    min_lr_factor: float = 0.0  # the decay ends at lr * min_lr_factor
    seed: int = 42
    # "auto" = bf16 autocast on CUDA, fp32 on CPU; "fp32"; "bf16" (autocast over fp32 weights); "bf16-params":
    # bf16 weights for compute with fp32 master weights kept by FSDP2 and updated by AdamW (parallel.data=fsdp)
    mixed_precision: str = "auto"
    shard_optimizer: bool = False  # ZeRO-1: AdamW states sharded over the data-parallel ranks


@dataclass
class ParallelConfig:
    tensor: int = 1  # tensor-parallel size (heads and MLP split, megatron Column/RowParallelLinear)
    sequence: int = 1  # sequence-parallel size (frames split; all-to-all around temporal attention)
    backend: Optional[str] = None  # torch.distributed backend; None = nccl on CUDA, gloo on CPU
    # data parallelism: "ddp" (DistributedDataParallel, all-reduce overlapping backward) or "fsdp" (FSDP2
    # fully_shard per block: weights, gradients and AdamW states sharded, all-gather/reduce-scatter overlapped)
    data: str = "ddp"


@dataclass
class CheckpointConfig:
    dir: str = "outputs/train"
    every: int = 500  # steps between checkpoints (and at the end)
    keep: int = 2  # most recent checkpoints kept
    resume: Optional[str] = None  # "latest" or a checkpoint directory
    # start over in a folder that holds a run: its checkpoints and logs are moved aside to replaced-<time>/ first
    overwrite: bool = False


@dataclass
class LoggingConfig:
    every: int = 10
    csv: bool = True
    tensorboard: bool = False
    progress: bool = True
    wandb: bool = False  # Weights & Biases (pip install 'kinema-train[wandb]'), files under the run folder
    wandb_project: str = "kinema"
    wandb_mode: Optional[str] = None  # "online", "offline" (no network), "disabled"; None: $WANDB_MODE or online
    eval_every: int = 0  # steps between held-out evaluations (data.holdout samples; 0: none)
    sample_every: int = 0  # steps between logged samples (diffusion: videos of sample_prompts; vae: reconstructions)
    sample_prompts: list = field(default_factory=lambda: ["a red square moving to the right",
                                                          "a blue circle bouncing"])
    sample_seed: int = 0  # prompt i is sampled with seed sample_seed + i, the same at every sampling step
    sample_steps: int = 10  # denoising steps of the logged samples
    sample_guidance_scale: Optional[float] = None  # None: the pipeline's default
    sample_clips: int = 2  # vae task: clips reconstructed per sampling step (the hold-out, else the first ones)


@dataclass
class VaeLossConfig:
    """task: vae: the loss of kinema.vae.losses.VAELoss and the decoder's latent noise."""
    kl_weight: float = 1e-6
    reconstruction: str = "l1"  # l1 or l2
    perceptual: Optional[str] = None  # lpips-vgg, lpips-alex (needs lpips_backbone and lpips_linear)
    perceptual_weight: float = 1.0
    lpips_backbone: Optional[str] = None
    lpips_linear: Optional[str] = None
    discriminator: Optional[str] = None  # PatchGAN, on from disc_start: "2d", "3d"; None: no GAN
    disc_start: int = 2001
    disc_weight: float = 0.5
    latent_noise: float = 0.0  # decoder input noise in units of each latent channel's std (kinema.vae.train)
    # train the decoder alone: the encoder stays frozen, so its latents (and any DiT trained on them) stay valid
    decoder_only: bool = False


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    task: str = "diffusion"  # "diffusion" (model + frozen VAE/text encoder) or "vae" (trains vae.*, vae_loss)
    vae_loss: VaeLossConfig = field(default_factory=VaeLossConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# building from dicts, YAML and overrides
# ---------------------------------------------------------------------------------------------


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise KinemaError(f"config section {where or 'root'} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(values) - set(fields)))
    if unknown:
        prefix = f"{where}." if where else ""
        raise KinemaError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + k for k in unknown)}; "
            f"valid keys{' in ' + where if where else ''}: {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in values.items():
        f = fields[name]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            kwargs[name] = _build(f.default_factory, value if value is not None else {}, _join(where, name))
        else:
            kwargs[name] = _coerce(f, value, _join(where, name))
    return cls(**kwargs)


def _coerce(f: dataclasses.Field, value: Any, key: str) -> Any:
    """Numbers written as YAML strings ("1e-4" is a string in YAML 1.1) become the field's type."""
    default = f.default
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError
        elif isinstance(default, float) and isinstance(value, (int, str)):
            return float(value)
        elif isinstance(default, int) and isinstance(value, str):
            return int(value)
    except (TypeError, ValueError, OverflowError):
        fix = "write true or false" if isinstance(default, bool) else "write a number"
        raise KinemaError(f"{key}={value!r} must be a {type(default).__name__}; {fix}") from None
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def from_dict(values: dict) -> TrainConfig:
    return _build(TrainConfig, values or {}, "")


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise KinemaError(f"override {item!r} must look like key.sub=value (e.g. optim.lr=1e-4)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise KinemaError(f"override {item!r}: the value is not valid YAML ({_one_line(exc)}); quote it or fix "
                          "the brackets") from None
    return key.strip().split("."), value


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Set ``a.b.c=value`` (value parsed as YAML) in a nested dict; sections are created as needed."""
    if not isinstance(values, dict):
        raise KinemaError(f"the config must be a mapping of sections (model:, data:, ...), got {values!r}")
    for item in overrides:
        path, value = parse_override(item)
        node = values
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise KinemaError(f"override {item!r}: {part} is a value, not a section")
            node = child
        node[path[-1]] = value
    return values


def load_config(path: Optional[str | os.PathLike] = None, overrides: Optional[list[str]] = None,
                validated: bool = True) -> TrainConfig:
    """The config of a YAML file with overrides; ``validated=False`` leaves the value checks to the caller."""
    values: dict = {}
    if path is not None:
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise KinemaError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise KinemaError(f"config file {path} is not valid YAML: {_one_line(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KinemaError(f"config file {path} cannot be read: {_one_line(exc)}") from None
    config = from_dict(apply_overrides(values, list(overrides or [])))
    if validated:
        validate(config)
    return config


def validate(config: TrainConfig) -> None:
    from .config_rules import check_fields, check_relations

    check_fields(config)  # every field's own rule: type, range or choices (counts become ints)
    check_relations(config)  # rules between fields
