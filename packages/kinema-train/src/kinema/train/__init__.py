"""kinema.train: diffusion training for kinema's video models (config, trainer, parallelism, checkpoints)."""

from .config import TrainConfig, load_config
from .trainer import NonFiniteLossError, Trainer

__all__ = ["NonFiniteLossError", "TrainConfig", "Trainer", "load_config"]
