"""Rectified flow with Euler steps (the scheduler Open-Sora adopted after 1.1).

x_t = (1 - s) x_0 + s * eps with s = t / 1000; the model predicts the velocity v = x_0 - eps, so an
Euler step from level s to s' < s is x + (s - s') v. Timesteps are sampled uniformly or
logit-normally for training; an optional shift ``s' = k s / (1 + (k - 1) s)`` spends more steps at
high noise (k > 1 for large videos).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config

from .base import (
    Guidance,
    HeldFrames,
    ModelFn,
    KinemaScheduler,
    StepCallback,
    noise_like,
    progress_iter,
    split_prediction,
)

TIMESTEP_SAMPLING = ("uniform", "logit-normal")


class RectifiedFlowScheduler(KinemaScheduler):
    """Rectified flow: linear noise path, velocity target, Euler sampling."""

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

    # sampling side ---------------------------------------------------------------------------
    def inference_timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """Descending timesteps in (0, 1000]; the last Euler step goes to level 0."""
        n = num_inference_steps or self.config.num_inference_steps
        s = 1.0 - torch.arange(n, dtype=torch.float64) / n
        return (self.shifted(s) * self.config.num_train_timesteps).float()

    def sample(self, model_fn: ModelFn, z, model_kwargs=None, guidance: Guidance | None = None, mask=None,
               num_inference_steps=None, generator=None, progress=False, callback: StepCallback | None = None):
        total = self.config.num_train_timesteps
        timesteps = self.inference_timesteps(num_inference_steps).to(z.device)
        channels = z.shape[1]
        model = self.guided_model(model_fn, guidance, channels)
        model_kwargs = dict(model_kwargs or {})
        x = z.float()
        held = None if mask is None else HeldFrames(mask, z.float())
        for step, t in enumerate(progress_iter(timesteps, progress, total=len(timesteps))):
            tb = t.expand(x.shape[0])
            if held is not None:
                x, active = held.before(x, float(t) / total,
                                        lambda ref, tb=tb: self.add_noise(ref, noise_like(ref, generator), tb),
                                        inclusive=True)
                model_kwargs["x_mask"] = active
            v, _ = split_prediction(model(x, tb, **model_kwargs), channels)
            t_next = timesteps[step + 1] if step + 1 < len(timesteps) else torch.zeros_like(t)
            x = x + (t - t_next) / total * v.float()
            if held is not None:
                x = held.after(x, active)
            if callback is not None:
                replaced = callback(step, t, x)
                x = replaced if replaced is not None else x
        return x
