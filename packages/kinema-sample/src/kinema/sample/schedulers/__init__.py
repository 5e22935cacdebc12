"""Schedulers: each one owns the training side (noise, target, loss) and the sampling loop.

Look them up by name (``lookup("scheduler", "ddim")(**config)``) or use the classes directly.
The contract is documented in :mod:`kinema.sample.schedulers.base`.
"""

from .base import Guidance, HeldFrames, KinemaScheduler, guided, mean_flat
from .diffusers_wrappers import DDIMSampler, DPMSolverSampler
from .iddpm import IDDPMScheduler, space_timesteps
from .rflow import RectifiedFlowScheduler


__all__ = [
    "DDIMSampler",
    "DPMSolverSampler",
    "Guidance",
    "HeldFrames",
    "IDDPMScheduler",
    "KinemaScheduler",
    "RectifiedFlowScheduler",
    "guided",
    "mean_flat",
    "space_timesteps",
]
