"""Helpers of VAE training. The training itself runs on kinema-train's shared trainer (``task: vae``,
kinema.train.vae_task; `kinema vae train` builds its config): checkpoints, exact resume, data parallelism,
trackers and a run folder come from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import torch


def noisy_latents(z: torch.Tensor, noise: float, eps: Optional[torch.Tensor] = None) -> torch.Tensor:
    """z plus Gaussian noise of `noise` x each channel's std over the batch.

    A diffusion model's latents are never exact, so the decoder must not depend on latent differences
    smaller than its error. With a near-zero KL weight nothing else stops the encoder from packing two
    colours a fraction of a std apart; noise relative to the channel's spread (the encoder cannot outgrow it
    by scaling up) makes it keep apart what the decoder has to tell apart. ``eps``: the standard normal draw
    (default: a fresh one), so a trainer can seed it per sample."""
    if noise <= 0:
        return z
    spread = z.detach().std(dim=(0, 2, 3, 4), keepdim=True)
    return z + noise * spread * (torch.randn_like(z) if eps is None else eps)


def save_atomic(model, folder: str | Path) -> Path:
    """save_pretrained into a sibling temp folder, then swap it in: an interrupted save loses nothing."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
