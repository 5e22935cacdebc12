"""The scheduler interface, shared by sampling (kinema.sample) and training (kinema.train).

A scheduler owns both sides of one diffusion process. Latents are video tensors
``[B, C, T, H, W]``; frame masks are ``[B, T]`` over latent frames.

Training side
    ``sample_training_timesteps(batch_size, generator=None, device=None) -> t [B]``
        timesteps on the scale the model is conditioned on (0..num_train_timesteps).
    ``add_noise(x_start, noise, t) -> x_t``
    ``training_target(x_start, noise, t) -> target``
        what the model's first C output channels regress to (epsilon or velocity).
    ``training_losses(model_fn, x_start, t, model_kwargs=None, mask=None, noise=None) -> dict``
        per-sample losses, ``{"loss": [B], ...}`` (IDDPM adds ``"mse"`` and ``"vb"``).
        ``mask`` [B, T] bool, True = frame is trained (noised at ``t``); False = given frame,
        noised at t=0, excluded from the loss, and passed to the model as ``x_mask``.

Sampling side
    ``sample(model_fn, z, model_kwargs=None, guidance=None, mask=None, num_inference_steps=None,
    generator=None, progress=False, callback=None) -> x_0``
        ``z`` holds the start noise, with reference latents already written at the frames
        named by ``mask``. ``mask`` [B, T] float: 1 = generate, 0 = keep the reference frame,
        r in (0, 1) = re-generate from noise level r (SDEdit-style editing).
        ``callback(step_index, timestep, latents)`` may return replacement latents.

The model is called as ``model_fn(x, t, **model_kwargs)`` and returns ``[B, C, ...]`` or,
for models that also predict a variance (``pred_sigma``), ``[B, 2C, ...]``.

Every scheduler is a diffusers ``ConfigMixin`` so it round-trips through a pipeline folder
(``scheduler/scheduler_config.json``) and is rebuilt from a config dict by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

ModelFn = Callable[..., torch.Tensor]
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


# --------------------------------------------------------------------------------------------
# Classifier-free guidance
# --------------------------------------------------------------------------------------------


@dataclass
class Guidance:
    """Classifier-free guidance: ``out_u + scale * (out_c - out_u)``.

    ``uncond_kwargs`` are the model kwargs that differ for the unconditional branch (e.g. ``y``
    set to the null caption, its ``mask``); every other kwarg is shared with the conditional one.
    ``channels`` guides only the first that many output channels (Open-Sora's ``cfg_channel``;
    its checkpoints use 3, so channel 3 of epsilon stays conditional); None = all C prediction
    channels. Channels past the guided ones (the variance head) come from the conditional branch.
    """

    scale: float
    uncond_kwargs: dict[str, Any] = field(default_factory=dict)
    channels: int | None = None


def _stack_for_cfg(cond: Any, uncond: Any, batch: int) -> Any:
    if isinstance(cond, torch.Tensor) and cond.dim() > 0 and cond.shape[0] == batch:
        return torch.cat([cond, uncond], dim=0)
    return cond  # per-call constants (e.g. a scalar) are shared


def guided(model_fn: ModelFn, guidance: Guidance | None, pred_channels: int) -> ModelFn:
    """Wrap ``model_fn`` so one call runs the conditional and unconditional halves as one batch."""
    if guidance is None or guidance.scale == 1.0:
        return model_fn
    n_guided = guidance.channels if guidance.channels is not None else pred_channels

    def fn(x: torch.Tensor, t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        b = x.shape[0]
        both = {k: _stack_for_cfg(v, guidance.uncond_kwargs.get(k, v), b) for k, v in kwargs.items()}
        for k in guidance.uncond_kwargs:
            if k not in kwargs:
                raise ValueError(f"guidance sets {k!r} for the unconditional branch but the model call has no {k!r}")
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), **both)
        cond, uncond = out[:b], out[b:]
        head = uncond[:, :n_guided] + guidance.scale * (cond[:, :n_guided] - uncond[:, :n_guided])
        return torch.cat([head, cond[:, n_guided:]], dim=1)

    return fn


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


def noise_like(x: torch.Tensor, generator: torch.Generator | list | None) -> torch.Tensor:
    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def progress_iter(items, progress: bool | dict, total: int | None = None):
    """Wrap an iterable in a tqdm bar; ``progress`` is a flag or tqdm keyword arguments."""
    if not progress:
        return items
    from tqdm.auto import tqdm

    kwargs = progress if isinstance(progress, dict) else {}
    return tqdm(items, total=total, **kwargs)


# --------------------------------------------------------------------------------------------
# Frame conditioning for schedulers that step on the training timestep scale
# --------------------------------------------------------------------------------------------


class HeldFrames:
    """Keeps reference frames clean until their edit step (Open-Sora 1.1 conditioning).

    A frame with mask value m is generated while the noise level is below m (m=1: always,
    m=0: never). While held, it is the clean reference and the model sees it through
    ``x_mask=False`` (t=0 modulation); the step it starts being generated it is re-noised to
    the current level with ``renoise(x_ref, noise)``.
    """

    def __init__(self, mask: torch.Tensor, x_ref: torch.Tensor):
        if mask.shape != (x_ref.shape[0], x_ref.shape[2]):
            raise ValueError(f"frame mask {tuple(mask.shape)} does not match latents [B, T] = "
                             f"{(x_ref.shape[0], x_ref.shape[2])}")
        self.mask = mask.to(device=x_ref.device, dtype=torch.float32)
        self.x_ref = x_ref.clone()
        self.started = torch.zeros_like(self.mask, dtype=torch.bool)

    def before(self, x: torch.Tensor, level: float, renoise: Callable[[torch.Tensor], torch.Tensor],
               inclusive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (latents to feed the model, x_mask [B, T] bool). ``level`` in [0, 1]."""
        active = (level <= self.mask) if inclusive else (level < self.mask)
        entering = active & ~self.started & (self.mask < 1)  # frames to generate already hold the start noise
        if entering.any():
            x = torch.where(frames_to_5d(entering), renoise(self.x_ref), x)
        self.started |= active
        x = torch.where(frames_to_5d(active), x, self.x_ref)
        return x, active

    def after(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return torch.where(frames_to_5d(active), x, self.x_ref)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class KinemaScheduler(SchedulerMixin, ConfigMixin):
    """Base of kinema's schedulers (see the module docstring for the contract)."""

    config_name = "scheduler_config.json"
    num_train_timesteps: int = 1000

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
                        model_kwargs: dict | None = None, mask: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Plain MSE on the first C output channels (the variance head, if any, is unused)."""
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t, model_kwargs = self._noised_input(x_start, noise, t, model_kwargs, mask)
        pred, _ = split_prediction(model_fn(x_t, t, **model_kwargs), x_start.shape[1])
        mse = mean_flat((self.training_target(x_start, noise, t) - pred.float()) ** 2, mask)
        return {"loss": mse, "mse": mse}

    def _noised_input(self, x_start, noise, t, model_kwargs, mask):
        """x_t; with a frame mask the given frames are noised at t=0 and the model gets x_mask."""
        model_kwargs = dict(model_kwargs or {})
        x_t = self.add_noise(x_start, noise, t)
        if mask is not None:
            mask = mask.bool()
            x_t = torch.where(frames_to_5d(mask), x_t, self.add_noise(x_start, noise, torch.zeros_like(t)))
            model_kwargs["x_mask"] = mask
        return x_t, model_kwargs

    # sampling side ---------------------------------------------------------------------------
    def sample(self, model_fn: ModelFn, z: torch.Tensor, model_kwargs: dict | None = None,
               guidance: Guidance | None = None, mask: torch.Tensor | None = None,
               num_inference_steps: int | None = None, generator: torch.Generator | None = None,
               progress: bool | dict = False, callback: StepCallback | None = None) -> torch.Tensor:
        raise NotImplementedError

    def guided_model(self, model_fn: ModelFn, guidance: Guidance | None, channels: int) -> ModelFn:
        """``model_fn`` with guidance; unguided channel count defaults to the config's ``cfg_channel``."""
        return guided(model_fn, guidance, getattr(self.config, "cfg_channel", None) or channels)
