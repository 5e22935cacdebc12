"""Training objectives (IDDPM, rectified flow) and diffusers' samplers by name.

``lookup("scheduler", name)`` gives a training objective (``iddpm``, ``rflow``; what kinema-train trains with,
each naming its sampler with ``sampler()``) or a diffusers scheduler factory (``ddim``, ``dpm-solver``, ``pndm``,
``euler``, ``euler-a``, ``heun``, ``unipc``, ``ddpm``). See :mod:`kinema.sample.schedulers.base`.
"""

from .base import TrainingObjective, mean_flat
from .iddpm import IDDPMScheduler
from .rflow import RectifiedFlowScheduler
from .samplers import EPSILON_SAMPLERS, epsilon_sampler, sampler_by_name

__all__ = [
    "EPSILON_SAMPLERS",
    "IDDPMScheduler",
    "RectifiedFlowScheduler",
    "TrainingObjective",
    "epsilon_sampler",
    "mean_flat",
    "sampler_by_name",
]
