"""kinema.train: diffusion training for kinema's video models (config, trainer, parallelism, checkpoints).

Names load on first use, so discovering the plugin does not import torch or megatron-core.
"""

from kinema.core import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "NonFiniteLossError": ".trainer",
    "TrainConfig": ".config",
    "Trainer": ".trainer",
    "load_config": ".config",
})

__all__ = ["NonFiniteLossError", "TrainConfig", "Trainer", "load_config"]
