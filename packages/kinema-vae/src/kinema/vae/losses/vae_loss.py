"""VAE loss with a learned log-variance, KL, optional perceptual term and optional PatchGAN (upstream
`LPIPSWithDiscriminator`, frames folded into the batch for the pixel/perceptual terms).

generator step (optimizer_idx=0):
    rec = |x - x_hat| (or squared) + perceptual_weight * P(x, x_hat)      per pixel
    nll = sum(rec / exp(logvar) + logvar) / (B*T)
    kl  = sum(KL) / B
    g   = -mean(D(x_hat)),  d_weight = ||grad nll|| / (||grad g|| + 1e-4) on the last decoder layer,
          clamped to [0, 1e4], times disc_weight; on only from global_step >= disc_start
    loss = nll + kl_weight * kl + d_weight * g
discriminator step (optimizer_idx=1): hinge (or vanilla) on D(x) vs D(x_hat), also from disc_start.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from kinema.core import KinemaError

from .discriminator import NLayerDiscriminator, NLayerDiscriminator3D, hinge_d_loss, vanilla_d_loss


def _fold(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class VAELoss(nn.Module):
    def __init__(
        self,
        kl_weight: float = 1e-6,
        logvar_init: float = 0.0,
        reconstruction: str = "l1",
        perceptual: nn.Module | None = None,
        perceptual_weight: float = 1.0,
        discriminator: str | None = "3d",
        disc_start: int = 2001,
        disc_weight: float = 0.5,
        disc_factor: float = 1.0,
        disc_loss: str = "hinge",
        disc_layers: int = 3,
        disc_channels: int = 64,
    ):
        super().__init__()
        if reconstruction not in ("l1", "l2"):
            raise KinemaError(f"reconstruction loss must be 'l1' or 'l2', got {reconstruction!r}")
        if disc_loss not in ("hinge", "vanilla"):
            raise KinemaError(f"disc_loss must be 'hinge' or 'vanilla', got {disc_loss!r}")
        self.kl_weight, self.reconstruction = kl_weight, reconstruction
        self.logvar = nn.Parameter(torch.full((), float(logvar_init)))
        self.perceptual_loss = perceptual
        self.perceptual_weight = perceptual_weight
        self.disc_kind = discriminator
        if discriminator == "3d":
            self.discriminator = NLayerDiscriminator3D(3, disc_channels, disc_layers)
        elif discriminator == "2d":
            self.discriminator = NLayerDiscriminator(3, disc_channels, disc_layers)
        elif discriminator is None:
            self.discriminator = None
        else:
            raise KinemaError(f"discriminator must be '3d', '2d' or None, got {discriminator!r}")
        self.disc_start, self.disc_weight, self.disc_factor = disc_start, disc_weight, disc_factor
        self.disc_loss = hinge_d_loss if disc_loss == "hinge" else vanilla_d_loss

    def _discriminate(self, video: torch.Tensor) -> torch.Tensor:
        return self.discriminator(video if self.disc_kind == "3d" else _fold(video))

    def gan_active(self, global_step: int) -> bool:
        return self.discriminator is not None and global_step >= self.disc_start and self.disc_factor > 0

    def adaptive_weight(self, nll: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
        nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        weight = torch.clamp(nll_grad.norm() / (g_grad.norm() + 1e-4), 0.0, 1e4).detach()
        return weight * self.disc_weight

    def forward(self, inputs: torch.Tensor, reconstructions: torch.Tensor, posterior, optimizer_idx: int = 0,
                global_step: int = 0, last_layer: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        if inputs.shape != reconstructions.shape:
            raise KinemaError(f"inputs {tuple(inputs.shape)} and reconstructions {tuple(reconstructions.shape)} differ")
        if optimizer_idx == 1:
            return self._discriminator_loss(inputs, reconstructions, global_step)
        b = inputs.shape[0]
        x, x_hat = _fold(inputs), _fold(reconstructions)
        diff = x - x_hat
        rec = diff.abs() if self.reconstruction == "l1" else diff.pow(2)
        log = {"rec_loss": rec.mean().detach()}
        if self.perceptual_loss is not None and self.perceptual_weight > 0:
            p = self.perceptual_loss(x, x_hat)
            rec = rec + self.perceptual_weight * p
            log["perceptual_loss"] = p.mean().detach()
        nll = rec / torch.exp(self.logvar) + self.logvar
        nll_loss = nll.sum() / x.shape[0]
        kl_loss = posterior.kl().sum() / b
        loss = nll_loss + self.kl_weight * kl_loss
        log.update(nll_loss=nll_loss.detach(), kl_loss=kl_loss.detach(), logvar=self.logvar.detach())
        if self.gan_active(global_step):
            g_loss = -self._discriminate(reconstructions).mean()
            if last_layer is not None and torch.is_grad_enabled():
                d_weight = self.adaptive_weight(nll_loss, g_loss, last_layer)
            else:
                d_weight = torch.tensor(0.0, device=inputs.device)
            loss = loss + d_weight * self.disc_factor * g_loss
            log.update(g_loss=g_loss.detach(), d_weight=d_weight)
        log["loss"] = loss.detach()
        return loss, log

    def _discriminator_loss(self, inputs, reconstructions, global_step):
        if not self.gan_active(global_step):
            zero = inputs.new_zeros(())
            return zero, {"disc_loss": zero}
        logits_real = self._discriminate(inputs.detach())
        logits_fake = self._discriminate(reconstructions.detach())
        d_loss = self.disc_factor * self.disc_loss(logits_real, logits_fake)
        return d_loss, {"disc_loss": d_loss.detach(), "logits_real": logits_real.mean().detach(),
                        "logits_fake": logits_fake.mean().detach()}
