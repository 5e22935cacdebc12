"""A small, single-device VAE trainer with the upstream optimiser settings.

Adam(betas=(0.5, 0.9)) for the VAE (+ the loss's logvar) and for the discriminator, both at `lr`
(1e-5 upstream), gradient norm clipped at 1.0, two updates per step once the GAN is on. Unlike the
Lightning trainer upstream, global_step counts iterations (not optimiser steps), so disc_start is
not doubled. Checkpoints are diffusers folders written atomically.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import ClipBank
from .losses import VAELoss


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 1
    num_frames: int = 17
    lr: float = 1e-5
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    # decoder input noise, in units of each latent channel's std over the batch (0 = off); see noisy_latents
    latent_noise: float = 0.0


def make_optimizers(vae: torch.nn.Module, loss: VAELoss, lr: float):
    """The upstream pair: Adam(0.5, 0.9) for the autoencoder (+ logvar) and for the discriminator."""
    ae = torch.optim.Adam(list(vae.parameters()) + [loss.logvar], lr=lr, betas=(0.5, 0.9))
    disc = None
    if loss.discriminator is not None:
        disc = torch.optim.Adam(loss.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
    return ae, disc


def noisy_latents(z: torch.Tensor, noise: float) -> torch.Tensor:
    """z plus Gaussian noise of `noise` x each channel's std over the batch.

    A diffusion model's latents are never exact, so the decoder must not depend on latent differences
    smaller than its error. With a near-zero KL weight nothing else stops the encoder from packing two
    colours a fraction of a std apart; noise relative to the channel's spread (the encoder cannot outgrow it
    by scaling up) makes it keep apart what the decoder has to tell apart."""
    if noise <= 0:
        return z
    spread = z.detach().std(dim=(0, 2, 3, 4), keepdim=True)
    return z + noise * spread * torch.randn_like(z)


def train_vae(vae, loss: VAELoss, bank: ClipBank, cfg: TrainConfig,
              on_log: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train in place; returns the logged dicts (floats)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    ae_opt, disc_opt = make_optimizers(vae, loss, cfg.lr)
    vae.train()
    loss.train()
    history = []
    for step in range(cfg.steps):
        x = bank.sample(cfg.batch_size, cfg.num_frames, rng)
        posterior = vae.encode(x).latent_dist
        z = noisy_latents(posterior.sample(), cfg.latent_noise)
        recon = vae.decode(z).sample
        ae_loss, log = loss(x, recon, posterior, 0, step, last_layer=vae.get_last_layer())
        ae_opt.zero_grad(set_to_none=True)
        ae_loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        ae_opt.step()
        if disc_opt is not None and loss.gan_active(step):
            d_loss, d_log = loss(x, recon.detach(), posterior, 1, step)
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(loss.discriminator.parameters(), cfg.grad_clip)
            disc_opt.step()
            log.update(d_log)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            entry = {"step": step, **{k: float(v) for k, v in log.items()}}
            history.append(entry)
            if on_log:
                on_log(step, entry)
    vae.eval()
    return history


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
