"""diffusers' schedulers by name, on the chain Open-Sora and Open-Sora-Plan train (1000 steps, linear betas
1e-4 .. 0.02, epsilon prediction), so ``set_scheduler("pndm")`` or ``kinema sample --scheduler ddim`` samples
an IDDPM-trained model. Nothing is re-implemented: each name is a diffusers class and its config.

Any other diffusers scheduler works too, by assignment (``pipe.scheduler = X.from_config(pipe.scheduler.config)``).
"""

from __future__ import annotations

import diffusers
from kinema.core import lookup

from .base import TrainingObjective

# the trained chain every epsilon sampler below shares
CHAIN = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
         "prediction_type": "epsilon"}

# name -> (diffusers class, settings beyond the chain)
EPSILON_SAMPLERS = {
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": True, "timestep_spacing": "leading"}),
    "dpm-solver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                   "lower_order_final": True}),
    # Open-Sora-Plan 1.0's default sampler (50 steps, guidance 7.5)
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "ddpm": ("DDPMScheduler", {"clip_sample": False, "variance_type": "fixed_small"}),
}


def epsilon_sampler(name: str, **overrides):
    """The diffusers scheduler registered as ``name``, on the trained chain (``overrides`` win)."""
    class_name, settings = EPSILON_SAMPLERS[name]
    return getattr(diffusers, class_name)(**{**CHAIN, **settings, **overrides})


def _factory(name: str):
    def make(**overrides):
        return epsilon_sampler(name, **overrides)

    make.__name__ = make.__qualname__ = name.replace("-", "_")
    make.__doc__ = f"diffusers' {EPSILON_SAMPLERS[name][0]} on the Open-Sora chain."
    return make


ddim = _factory("ddim")
dpm_solver = _factory("dpm-solver")
pndm = _factory("pndm")
euler = _factory("euler")
euler_a = _factory("euler-a")
heun = _factory("heun")
unipc = _factory("unipc")
ddpm = _factory("ddpm")



def sampler_by_name(name: str, **config):
    """The registered scheduler ``name`` as (a diffusers scheduler, the prediction it samples): a training
    objective gives its ``sampler()`` and ``prediction_type``; a sampler name samples epsilon models."""
    made = lookup("scheduler", name)(**config)
    if isinstance(made, TrainingObjective):
        return made.sampler(), made.prediction_type
    return made, "epsilon"
