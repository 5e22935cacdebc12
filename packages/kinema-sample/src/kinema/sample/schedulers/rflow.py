"""Rectified flow with Euler steps (the scheduler Open-Sora adopted after 1.1).

x_t = (1 - s) x_0 + s * eps with s = t / 1000; the model predicts the velocity v = x_0 - eps, so an
Euler step from level s to s' < s is x + (s - s') v. Timesteps are sampled uniformly or
logit-normally for training; an optional shift ``s' = k s / (1 + (k - 1) s)`` spends more steps at
high noise (k > 1 for large videos).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.configuration_utils import register_to_config

from .base import TrainingObjective

TIMESTEP_SAMPLING = ("uniform", "logit-normal")


class RectifiedFlowScheduler(TrainingObjective):
    """Rectified flow: linear noise path, velocity target (x_0 - eps), Euler sampling."""

    prediction_type = "flow"

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, num_inference_steps: int = 30,
                 timestep_sampling: str = "uniform", shift: float = 1.0, cfg_channel: int | None = None):
        if timestep_sampling not in TIMESTEP_SAMPLING:
            raise ValueError(f"timestep_sampling {timestep_sampling!r}; choose one of {', '.join(TIMESTEP_SAMPLING)}")

    def _level(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        s = t.to(device=like.device, dtype=torch.float32) / self.config.num_train_timesteps
        return s.reshape(-1, *([1] * (like.dim() - 1)))

    def shifted(self, s: torch.Tensor) -> torch.Tensor:
        k = self.config.shift
        return k * s / (1 + (k - 1) * s)

    # training side ---------------------------------------------------------------------------
    def sample_training_timesteps(self, batch_size, generator=None, device=None):
        if self.config.timestep_sampling == "uniform":
            s = torch.rand(batch_size, generator=generator)
        else:
            s = torch.sigmoid(torch.randn(batch_size, generator=generator))
        t = self.shifted(s) * self.config.num_train_timesteps
        return t.to(device) if device is not None else t

    def add_noise(self, x_start, noise, t):
        s = self._level(t, x_start)
        return (1 - s) * x_start + s * noise

    def training_target(self, x_start, noise, t):
        return x_start - noise

    # sampling: diffusers' flow-matching Euler with the same shift --------------------------------
    def sampler(self) -> FlowMatchEulerDiscreteScheduler:
        """Euler steps from level 1 to 0; the pipeline passes the sigmas 1 - i/n and this shift bends them."""
        c = self.config
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=c.num_train_timesteps, shift=c.shift)
