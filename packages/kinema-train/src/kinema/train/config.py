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
from kinema.dit.contract import AR_CONVENTIONS


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
    mixed_precision: str = "auto"  # "auto" = bf16 autocast on CUDA, fp32 on CPU; "fp32"; "bf16"
    shard_optimizer: bool = False  # ZeRO-1: AdamW states sharded over the data-parallel ranks


@dataclass
class ParallelConfig:
    tensor: int = 1  # tensor-parallel size (heads and MLP split, megatron Column/RowParallelLinear)
    sequence: int = 1  # sequence-parallel size (frames split; all-to-all around temporal attention)
    backend: Optional[str] = None  # torch.distributed backend; None = nccl on CUDA, gloo on CPU
    data: str = "ddp"  # data parallelism: "ddp" (DistributedDataParallel, all-reduce overlapping backward)


@dataclass
class CheckpointConfig:
    dir: str = "outputs/train"
    every: int = 500  # steps between checkpoints (and at the end)
    keep: int = 2  # most recent checkpoints kept
    resume: Optional[str] = None  # "latest" or a checkpoint directory


@dataclass
class LoggingConfig:
    every: int = 10
    csv: bool = True
    tensorboard: bool = False
    progress: bool = True


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# building from dicts, YAML and overrides
# ---------------------------------------------------------------------------------------------


def _build(cls, values: Any, where: str):
    if not isinstance(values, dict):
        raise KinemaError(f"config section {where or 'root'} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
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
    except ValueError:
        raise KinemaError(f"{key}={value!r} must be a {type(default).__name__}") from None
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def from_dict(values: dict) -> TrainConfig:
    return _build(TrainConfig, values or {}, "")


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise KinemaError(f"override {item!r} must look like key.sub=value (e.g. optim.lr=1e-4)")
    key, raw = item.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Set ``a.b.c=value`` (value parsed as YAML) in a nested dict; sections are created as needed."""
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
            raise KinemaError(f"config file {path} is not valid YAML: {exc}") from None
    config = from_dict(apply_overrides(values, list(overrides or [])))
    if validated:
        validate(config)
    return config


def validate(config: TrainConfig) -> None:
    d, o = config.data, config.optim
    if d.source not in ("synthetic", "table", "features"):
        raise KinemaError(f"data.source={d.source!r}; use synthetic, table or features")
    if d.source in ("table", "features") and not d.path:
        what = "a CSV/parquet table of clips" if d.source == "table" else "a folder of feature shards"
        raise KinemaError(f"data.path is unset but data.source={d.source} reads one; point it at {what}")
    if d.batch_size < 1 or o.max_steps < 0:
        raise KinemaError("data.batch_size must be >= 1 and optim.max_steps >= 0")
    if not 0 <= d.caption_dropout <= 1:
        raise KinemaError(f"data.caption_dropout={d.caption_dropout} must be in [0, 1]")
    if o.mixed_precision not in ("auto", "fp32", "bf16"):
        raise KinemaError(f"optim.mixed_precision={o.mixed_precision!r}; use auto, fp32 or bf16")
    if not 0 <= o.decay_steps <= o.max_steps or not 0 <= o.min_lr_factor <= 1:
        raise KinemaError(f"optim.decay_steps={o.decay_steps} must be in [0, max_steps={o.max_steps}] and "
                       f"optim.min_lr_factor={o.min_lr_factor} in [0, 1]")
    if config.model.ar_convention not in AR_CONVENTIONS:
        raise KinemaError(f"model.ar_convention={config.model.ar_convention!r}; use {' or '.join(AR_CONVENTIONS)} "
                          "(height/width unless fine-tuning Open-Sora 1.1's released weights)")
    if config.parallel.data not in ("ddp",):
        raise KinemaError(f"parallel.data={config.parallel.data!r}; use ddp")
    if not 0 <= o.ema_decay < 1:
        raise KinemaError(f"optim.ema_decay={o.ema_decay} must be in [0, 1)")
