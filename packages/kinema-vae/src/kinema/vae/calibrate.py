"""Latent statistics for diffusion: per-channel mean and std of a VAE's latents over sample clips.

A diffusion model's noise has zero mean and unit variance in every channel; latents far from that
(a small VAE trained from scratch easily puts a channel at mean 1.9) waste the noise schedule. The
statistics go into the VAE config as ``latents_mean`` / ``latents_std`` (diffusers' names), and
``encode_video`` / ``decode_video`` apply them, so nothing downstream needs to know.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kinema.core import KinemaError

from .data import load_clip
from kinema.core.progress import progress_bar


@torch.no_grad()
def latent_statistics(vae, paths: list[Path], num_frames: int, resolution: int, batch_size: int = 16,
                      progress: bool | None = False) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the posterior mode over the clips (before any scaling).

    progress: a bar per batch on stderr (None: only when stderr is a terminal)."""
    if not paths:
        raise KinemaError("no clips to measure; give at least one video")
    count, total, total_sq = 0, 0.0, 0.0
    for i in progress_bar(range(0, len(paths), batch_size), desc="calibrate", enabled=progress, unit="batch"):
        x = torch.stack([load_clip(p, num_frames, resolution) for p in paths[i : i + batch_size]])
        z = vae.encode(x.to(vae.dtype)).latent_dist.mode().double()
        per_channel = z.transpose(0, 1).reshape(z.shape[1], -1)
        total = total + per_channel.sum(1)
        total_sq = total_sq + per_channel.pow(2).sum(1)
        count += per_channel.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return [round(float(v), 5) for v in mean], [round(float(v), 5) for v in std]
