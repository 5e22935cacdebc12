"""DDIM and DPM-Solver++ by wrapping diffusers' schedulers.

The wrapped schedulers use the training chain of Open-Sora / Open-Sora-Plan (1000 steps, linear
betas 1e-4 .. 0.02, epsilon prediction), so a model trained with ``iddpm`` samples with either.
Only the first C output channels (epsilon) are used; a variance head is ignored. Reference
frames are held with :class:`HeldFrames` on the 0..1000 timestep scale.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.configuration_utils import register_to_config

from .base import (
    Guidance,
    HeldFrames,
    KinemaScheduler,
    ModelFn,
    StepCallback,
    noise_like,
    progress_iter,
    split_prediction,
)
from .iddpm import DiffusionTables, linear_betas


class DiffusersSampler(KinemaScheduler):
    """Shared loop: one diffusers scheduler instance per ``sample`` call (they are stateful)."""

    def make_diffusers_scheduler(self):
        raise NotImplementedError

    def step_kwargs(self) -> dict:
        return {}

    # training side: epsilon MSE on the same chain ------------------------------------------------
    def add_noise(self, x_start, noise, t):
        # diffusers' multistep schedulers only noise at their inference timesteps; train on the closed form
        if not hasattr(self, "_tables"):
            c = self.config
            self._tables = DiffusionTables(linear_betas(c.num_train_timesteps, c.beta_start, c.beta_end))
        return self._tables.q_sample(x_start, t, noise)

    def training_target(self, x_start, noise, t):
        return noise

    # sampling side ------------------------------------------------------------------------------
    def sample(self, model_fn: ModelFn, z, model_kwargs=None, guidance: Guidance | None = None, mask=None,
               num_inference_steps=None, generator=None, progress=False, callback: StepCallback | None = None):
        sched = self.make_diffusers_scheduler()
        sched.set_timesteps(num_inference_steps or self.config.num_inference_steps, device=z.device)
        channels = z.shape[1]
        model = self.guided_model(model_fn, guidance, channels)
        model_kwargs = dict(model_kwargs or {})
        x = z.float() * sched.init_noise_sigma
        held = None if mask is None else HeldFrames(mask, z.float())
        total = self.config.num_train_timesteps
        for step, t in enumerate(progress_iter(sched.timesteps, progress, total=len(sched.timesteps))):
            tb = t.expand(x.shape[0]).to(z.device)
            if held is not None:
                def renoise(ref, tb=tb):
                    return sched.add_noise(ref, noise_like(ref, generator), tb.long())

                x, active = held.before(x, float(t) / total, renoise)
                model_kwargs["x_mask"] = active
            eps, _ = split_prediction(model(sched.scale_model_input(x, t), tb, **model_kwargs), channels)
            x = sched.step(eps.float(), t, x, generator=generator, **self.step_kwargs()).prev_sample
            if held is not None:
                x = held.after(x, active)
            if callback is not None:
                replaced = callback(step, t, x)
                x = replaced if replaced is not None else x
        return x


class DDIMSampler(DiffusersSampler):
    """DDIM (η = 0 is deterministic) over diffusers' ``DDIMScheduler``."""

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 num_inference_steps: int = 50, eta: float = 0.0, timestep_spacing: str = "leading",
                 cfg_channel: int | None = None):
        pass

    def make_diffusers_scheduler(self):
        c = self.config
        return DDIMScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start, beta_end=c.beta_end,
                             beta_schedule="linear", prediction_type="epsilon", clip_sample=False,
                             set_alpha_to_one=True, timestep_spacing=c.timestep_spacing)

    def step_kwargs(self):
        return {"eta": self.config.eta}


class DPMSolverSampler(DiffusersSampler):
    """DPM-Solver++ (multistep, 2nd order by default) over diffusers' ``DPMSolverMultistepScheduler``."""

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 num_inference_steps: int = 20, solver_order: int = 2, cfg_channel: int | None = None):
        pass

    def make_diffusers_scheduler(self):
        c = self.config
        return DPMSolverMultistepScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start,
                                           beta_end=c.beta_end, beta_schedule="linear", prediction_type="epsilon",
                                           algorithm_type="dpmsolver++", solver_order=c.solver_order,
                                           lower_order_final=True)
