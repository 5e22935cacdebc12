"""Training objectives: the training side of a diffusion process (kinema.train uses them).

Sampling is diffusers' business: every objective names the diffusers scheduler that samples what it trains
(``sampler()``), and the pipeline's loop drives that scheduler step by step (:mod:`kinema.sample.denoising`).
What stays here is what diffusers lacks: IDDPM's hybrid loss with its variational bound, and Open-Sora's
rectified-flow training-time distribution. Latents are ``[B, C, T, H, W]``; frame masks ``[B, T]``.

    ``sample_training_timesteps(batch_size, generator=None, device=None) -> t [B]``
        timesteps on the scale the model is conditioned on (0..num_train_timesteps).
    ``add_noise(x_start, noise, t) -> x_t``;  ``training_target(x_start, noise, t) -> target``
    ``training_losses(model_fn, x_start, t, mask=None, noise=None) -> {"loss": [B], ...}``
        ``model_fn(x_t, t, frame_mask)`` returns [B, C, ...] or [B, 2C, ...] (with a variance head).
        ``mask`` [B, T] bool: True = frame is trained (noised at t); False = given frame, noised at t = 0,
        excluded from the loss and passed to the model as its frame mask.
    ``prediction_type``: "epsilon" or "flow" (what the pipeline tells its scheduler loop).
    ``sampler()``: a diffusers scheduler on the same chain, for pipeline folders.

Objectives are diffusers ``ConfigMixin`` so a config dict rebuilds them by name.
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers.configuration_utils import ConfigMixin

# model_fn(x_t, t, frame_mask) -> prediction
ModelFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


# --------------------------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------------------------


def frames_to_5d(mask: torch.Tensor) -> torch.Tensor:
    """[B, T] -> [B, 1, T, 1, 1], to broadcast a per-frame mask over latents."""
    return mask[:, None, :, None, None]


def extract(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """table[t] as float32 on ``like``'s device, shaped to broadcast over ``like`` ([B, 1, 1, ...])."""
    values = table.to(t.device)[t.long()].to(device=like.device, dtype=torch.float32)
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def mean_flat(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean over all non-batch dims; with a frame mask [B, T], only over True frames."""
    if mask is None:
        return x.mean(dim=tuple(range(1, x.dim())))
    m = frames_to_5d(mask.to(x.dtype)).expand_as(x)
    return (x * m).sum(dim=tuple(range(1, x.dim()))) / m.sum(dim=tuple(range(1, x.dim()))).clamp(min=1)


def split_prediction(out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Model output -> (prediction [B, C], variance head [B, C] or None)."""
    if out.shape[1] == channels:
        return out, None
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    raise ValueError(f"model returned {out.shape[1]} channels for {channels}-channel latents; expected C or 2C")


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class TrainingObjective(ConfigMixin):
    """Base of kinema's training objectives (see the module docstring for the contract)."""

    config_name = "scheduler_config.json"
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"

    def sampler(self):
        """The diffusers scheduler that samples what this objective trains."""
        raise NotImplementedError

    # training side ---------------------------------------------------------------------------
    def sample_training_timesteps(self, batch_size: int, generator: torch.Generator | None = None,
                                  device: torch.device | str | None = None) -> torch.Tensor:
        t = torch.randint(0, self.config.num_train_timesteps, (batch_size,), generator=generator)
        return t.to(device) if device is not None else t

    def add_noise(self, x_start: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_target(self, x_start: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_losses(self, model_fn: ModelFn, x_start: torch.Tensor, t: torch.Tensor,
                        mask: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Plain MSE on the first C output channels (the variance head, if any, is unused)."""
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t, mask = self._noised_input(x_start, noise, t, mask)
        pred, _ = split_prediction(model_fn(x_t, t, mask), x_start.shape[1])
        mse = mean_flat((self.training_target(x_start, noise, t) - pred.float()) ** 2, mask)
        return {"loss": mse, "mse": mse}

    def _noised_input(self, x_start, noise, t, mask):
        """(x_t, bool frame mask or None); with a frame mask the given frames are noised at t = 0."""
        x_t = self.add_noise(x_start, noise, t)
        if mask is not None:
            mask = mask.bool()
            x_t = torch.where(frames_to_5d(mask), x_t, self.add_noise(x_start, noise, torch.zeros_like(t)))
        return x_t, mask
