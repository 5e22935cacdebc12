"""What the pipeline's denoising loop needs to drive any diffusers scheduler.

Schedulers are step-level (diffusers' ``set_timesteps`` / ``step`` / ``add_noise`` or ``scale_noise``); the
loop in :class:`kinema.sample.pipeline.KinemaVideoPipeline` owns guidance, held frames, callbacks and progress.

Two families of trained models exist, named by the pipeline's ``prediction_type``:

- ``"epsilon"``: trained on the variance-preserving chain (IDDPM: 1000 linear betas 1e-4..0.02). Any of
  diffusers' DDPM-family schedulers samples it (DDPM, DDIM, PNDM, DPM-Solver++, Euler, Euler-a, Heun, UniPC...).
  A 2C-channel output carries the learned variance; schedulers with ``variance_type="learned_range"`` get it.
- ``"flow"``: rectified flow as Open-Sora trains it (x_t = (1 - s) x_0 + s eps, the model predicts x_0 - eps).
  Flow-matching schedulers sample it; they step along eps - x_0, so the prediction is negated for them.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch
from diffusers import (
    DDPMParallelScheduler,
    DDPMScheduler,
    DPMSolverMultistepInverseScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSinglestepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    SASolverScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from kinema.core import KinemaError

from .schedulers.base import frames_to_5d

PREDICTION_TYPES = ("epsilon", "flow")
FLOW_SCHEDULERS = (FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler)
LEARNED_VARIANCE_SCHEDULERS = (DDPMScheduler, DDPMParallelScheduler)
# these read a learned variance_type as DeepFloyd IF's layout (3 image channels + their variance)
THREE_CHANNEL_VARIANCE_SCHEDULERS = (DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
                                     DPMSolverMultistepInverseScheduler, SASolverScheduler)


def is_flow_scheduler(scheduler) -> bool:
    return isinstance(scheduler, FLOW_SCHEDULERS)


def check_scheduler(scheduler, prediction_type: str) -> None:
    """A flow model needs a flow-matching scheduler and an epsilon model a diffusion one; say which."""
    if prediction_type not in PREDICTION_TYPES:
        raise KinemaError(f"prediction_type {prediction_type!r}; choose one of {', '.join(PREDICTION_TYPES)}")
    name = type(scheduler).__name__
    if prediction_type == "flow" and not is_flow_scheduler(scheduler):
        raise KinemaError(f"this model was trained with rectified flow; {name} samples diffusion (epsilon) models. "
                          "Use FlowMatchEulerDiscreteScheduler (set_scheduler('rflow'), --scheduler rflow) or "
                          "FlowMatchHeunDiscreteScheduler")
    if prediction_type == "epsilon" and is_flow_scheduler(scheduler):
        raise KinemaError(f"this model predicts noise (epsilon); {name} samples rectified-flow models. "
                          "Use a diffusion scheduler, e.g. set_scheduler('iddpm'), 'ddim', 'dpm-solver' or 'pndm' "
                          "(--scheduler on the command line)")
    if prediction_type == "epsilon" and scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise KinemaError(f"{name} is configured with prediction_type={scheduler.config.prediction_type!r}; "
                          "this model predicts epsilon: build the scheduler with prediction_type='epsilon'")


def adopt_scheduler(scheduler):
    """The scheduler the loop will drive. ``X.from_config(pipe.scheduler.config)`` copies the IDDPM sampler's
    ``variance_type="learned_range"``; DPM-Solver and SA-Solver would read it as DeepFloyd IF's 3-channel layout
    and cut our latents to 3 channels, so for them it is dropped (the loop hands them epsilon only)."""
    if isinstance(scheduler, THREE_CHANNEL_VARIANCE_SCHEDULERS) and \
            scheduler.config.get("variance_type") in ("learned", "learned_range"):
        return type(scheduler).from_config(scheduler.config, variance_type=None)
    return scheduler


def set_timesteps(scheduler, num_inference_steps: int, device) -> torch.Tensor:
    """Timesteps to visit, on the 0..num_train_timesteps scale the model is conditioned on.

    Flow schedulers get the sigmas Open-Sora samples with, 1 - i/n (as diffusers' SD3 and Flux pipelines pass
    them); the scheduler's ``shift`` then bends them."""
    if num_inference_steps < 1:
        raise KinemaError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    if is_flow_scheduler(scheduler):
        sigmas = np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)
        scheduler.set_timesteps(sigmas=sigmas, device=device)
    else:
        scheduler.set_timesteps(num_inference_steps, device=device)
    return scheduler.timesteps


def start_latents(scheduler, z: torch.Tensor) -> torch.Tensor:
    """Unit Gaussian start noise scaled as the scheduler expects (Euler-family schedulers start at sigma_max;
    flow-matching schedulers start at unit noise and have no such scale)."""
    return z if is_flow_scheduler(scheduler) else z * scheduler.init_noise_sigma


def model_input(scheduler, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The latents as the model sees them at ``t`` (Euler-family schedulers divide by sqrt(sigma^2 + 1))."""
    return x if is_flow_scheduler(scheduler) else scheduler.scale_model_input(x, t)


def renoise(scheduler, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``clean`` noised to timestep ``t`` the way this scheduler's samples are."""
    tb = t.reshape(1).expand(clean.shape[0])
    if is_flow_scheduler(scheduler):
        return scheduler.scale_noise(clean, tb, noise)
    return scheduler.add_noise(clean, noise, tb)


def scheduler_input(output: torch.Tensor, channels: int, prediction_type: str, scheduler) -> torch.Tensor:
    """The model's output as the scheduler's ``step`` wants it."""
    if output.shape[1] not in (channels, 2 * channels):
        raise KinemaError(f"the transformer returned {output.shape[1]} channels for {channels}-channel latents; "
                          "expected C or 2C (with a variance head)")
    if prediction_type == "flow":
        return -output[:, :channels]  # Open-Sora predicts x_0 - eps; diffusers' flow schedulers step along eps - x_0
    # only diffusers' DDPM steps take the variance head (other schedulers may carry a copied variance_type)
    learned = isinstance(scheduler, LEARNED_VARIANCE_SCHEDULERS) and scheduler.config.variance_type in (
        "learned", "learned_range")
    if learned and output.shape[1] == channels:
        raise KinemaError(f"{type(scheduler).__name__} uses a learned variance but the transformer has no variance "
                          "head (pred_sigma=False); use variance_type='fixed_small'")
    return output if learned else output[:, :channels]


def step_kwargs(scheduler, generator) -> dict:
    """diffusers' schedulers differ in whether ``step`` draws noise; diffusers' own pipelines read ``step``'s
    signature to pass a generator only to those that take one, and so do we (a diffusers API, not ours)."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def guide(out: torch.Tensor, scale: float, channels: int | None) -> torch.Tensor:
    """Classifier-free guidance on a [uncond; cond] batch: uncond + scale * (cond - uncond) on the first
    ``channels`` output channels (Open-Sora's cfg_channel; None = all prediction channels); the rest (the
    variance head) come from the conditional half."""
    uncond, cond = out.chunk(2)
    n = channels if channels is not None else out.shape[1]
    head = uncond[:, :n] + scale * (cond[:, :n] - uncond[:, :n])
    return torch.cat([head, cond[:, n:]], dim=1)


class HeldFrames:
    """Reference frames (image-to-video, extension, editing) kept clean until their edit level.

    ``mask`` [B, T]: 1 = generate, 0 = keep the reference, r in (0, 1) = regenerate once the noise level
    (t / num_train_timesteps) is below r (SDEdit-style editing). A held frame is the clean reference and the
    model sees it through its frame mask (False: t = 0 modulation); the step a frame starts being generated
    it is re-noised to the current level.
    """

    def __init__(self, mask: torch.Tensor, reference: torch.Tensor, generator=None):
        if tuple(mask.shape) != (reference.shape[0], reference.shape[2]):
            raise KinemaError(f"frame mask {tuple(mask.shape)} does not match latents [B, T] = "
                              f"{(reference.shape[0], reference.shape[2])}")
        self.mask = mask.to(device=reference.device, dtype=torch.float32)
        self.reference = reference.clone()
        self.started = self.mask >= 1  # frames to generate hold their start noise already
        self.generator = generator

    def before(self, x: torch.Tensor, level: float,
               noised: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (latents for the model, frame mask [B, T] bool: True = being generated)."""
        active = (self.mask >= 1) | (level < self.mask)
        entering = active & ~self.started
        if entering.any():
            noise = randn_tensor(self.reference.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            x = torch.where(frames_to_5d(entering), noised(self.reference.to(x.dtype), noise), x)
        self.started |= active
        return torch.where(frames_to_5d(active), x, self.reference.to(x.dtype)), active

    def after(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return torch.where(frames_to_5d(active), x, self.reference.to(x.dtype))
