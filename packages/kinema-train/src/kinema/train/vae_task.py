"""The VAE task (``task: vae``): a video VAE trained on the shared loop (checkpoints, exact resume, data
parallelism, trackers, run folder).

The trained module is the VAE together with its loss (kinema.vae.losses.VAELoss: the learned log-variance and
the optional PatchGAN discriminator), so one optimizer, one checkpoint and one resume cover all of it.
Generator and discriminator terms are summed into one backward: the discriminator is frozen while the
generator term is computed and sees detached reconstructions in its own term, so each part gets exactly the
gradient of its upstream optimizer step (one AdamW, betas from optim.betas; gradient norms clipped per part
as upstream). Posterior samples and decoder noise come from per-sample generators seeded like the
diffusion task's, so a resumed step computes the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from kinema.core import KinemaError

from .trainer import Sample, Trainer, _sample_seed


class VaeWithLoss(nn.Module):
    """VAE + loss; forward(x, step, generators) -> (loss to minimise, logged terms)."""

    def __init__(self, vae: nn.Module, loss: nn.Module, latent_noise: float = 0.0, decoder_only: bool = False):
        super().__init__()
        self.vae, self.loss, self.latent_noise, self.decoder_only = vae, loss, latent_noise, decoder_only
        if decoder_only:  # the trainer's optimizer and EMA then hold the decoder's weights only
            for module in vae.encoder_modules():
                module.requires_grad_(False)

    def forward(self, x: torch.Tensor, step: int, generators: list[torch.Generator]):
        from kinema.vae.train import noisy_latents

        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.decoder_only):
            posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * _per_sample_noise(posterior.mean, generators)
        if self.latent_noise > 0:
            z = noisy_latents(z, self.latent_noise, _per_sample_noise(z, generators))
        recon = self.vae.decode(z).sample
        disc = self.loss.discriminator
        if disc is not None:
            disc.requires_grad_(False)  # the generator term must not move the discriminator
        try:
            total, log = self.loss(x, recon, posterior, 0, step, last_layer=self.vae.get_last_layer())
        finally:
            if disc is not None:
                disc.requires_grad_(True)
        if disc is not None:
            d_loss, d_log = self.loss(x, recon.detach(), posterior, 1, step)
            log.update(d_log)
            # before disc_start the term is a constant: DDP still expects a gradient for every parameter
            total = total + d_loss + 0.0 * sum(p.sum() for p in disc.parameters())
        return total, log


def _per_sample_noise(like: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.randn(like.shape[1:], generator=g) for g in generators]).to(like)


def build_vae_to_train(cfg) -> nn.Module:
    """vae.pretrained (a VAE folder: kinema's, upstream Open-Sora-Plan, or an SD AutoencoderKL) or a
    CausalVideoVAE built from vae.kwargs (its config)."""
    v = cfg.vae
    if v.pretrained:
        from kinema.vae.loading import load_vae

        return load_vae(v.pretrained)
    if v.kwargs:
        from kinema.vae.causal_vae import CausalVideoVAE

        try:
            return CausalVideoVAE.from_config(dict(v.kwargs))
        except (TypeError, ValueError, KinemaError) as exc:
            raise KinemaError(f"vae.kwargs is not a CausalVideoVAE config: {exc}") from None
    raise KinemaError("task=vae needs the VAE to train: set vae.pretrained (a VAE folder to start from) or "
                      "vae.kwargs (a CausalVideoVAE config)")


def check_vae_fits_data(cfg, vae) -> None:
    """The clips must be videos whose frame count and size the VAE's compression divides."""
    if cfg.data.source == "features":
        raise KinemaError("task=vae trains on videos; set data.source=synthetic or table, not features")
    tc, sc = vae.temporal_compression, vae.spatial_compression
    n, (h, w) = cfg.data.num_frames, cfg.data.image_size
    if (n - 1) % tc:
        raise KinemaError(f"data.num_frames={n} does not fit the VAE's {tc}x temporal compression; use "
                          f"1 + k*{tc} frames (e.g. {1 + tc * max(1, (n - 1) // tc)})")
    if h % sc or w % sc:
        raise KinemaError(f"data.image_size={[h, w]} must be a multiple of the VAE's {sc}x spatial compression")


def build_vae_loss(cfg) -> nn.Module:
    from kinema.vae.losses import VAELoss, build_perceptual_loss

    lc = cfg.vae_loss
    perceptual = None
    if lc.perceptual:
        perceptual = build_perceptual_loss(lc.perceptual, backbone=lc.lpips_backbone, linear=lc.lpips_linear)
    disc = None if lc.discriminator in (None, "none") else lc.discriminator
    return VAELoss(kl_weight=lc.kl_weight, reconstruction=lc.reconstruction, perceptual=perceptual,
                   perceptual_weight=lc.perceptual_weight, discriminator=disc, disc_start=lc.disc_start,
                   disc_weight=lc.disc_weight)


class VaeTrainer(Trainer):
    """The shared trainer with the VAE task's hooks."""

    def _build_task(self) -> None:
        cfg = self.cfg
        if cfg.parallel.tensor > 1 or cfg.parallel.sequence > 1:
            raise KinemaError(f"task=vae trains with data parallelism only; set parallel.tensor=1 and "
                              f"parallel.sequence=1 (got {cfg.parallel.tensor} and {cfg.parallel.sequence})")
        if cfg.vae_loss.decoder_only and not cfg.vae.pretrained:
            raise KinemaError("vae_loss.decoder_only=true keeps a trained encoder: set vae.pretrained to the VAE "
                              "folder to start from")
        vae = build_vae_to_train(cfg)
        check_vae_fits_data(cfg, vae)
        self.model = VaeWithLoss(vae, build_vae_loss(cfg), cfg.vae_loss.latent_noise,
                                 cfg.vae_loss.decoder_only).float().to(self.device)
        self.scheduler = self.vae = self.text_encoder = self.masks = None
        self._fixed_clips = None

    def _shard_model(self) -> None:
        """Nothing to shard: the VAE trains replicated (data parallelism)."""

    def loss(self, batch: dict, step: int) -> torch.Tensor:
        x = batch["video"].to(self.device).float()
        first = self.ctx.dp_rank * x.shape[0]  # position of this share in the global batch
        gens = [torch.Generator().manual_seed(_sample_seed(self.cfg.optim.seed, step, first + i))
                for i in range(x.shape[0])]
        with self._autocast():
            total, log = self.train_model(x, step, gens)
        self.step_scalars = {k: float(v) for k, v in log.items() if k != "loss"}
        return total.float()

    def clip_gradients(self) -> float:
        """As upstream: the VAE's and the discriminator's gradient norms are clipped each on its own, the loss's
        log-variance not at all (its gradient, a sum over pixels, would otherwise dominate the VAE's norm).
        Returns the VAE's norm before clipping."""
        from .parallelize import clip_gradients

        limit = self.cfg.optim.grad_clip
        trained = lambda module: [p for p in module.parameters() if p.requires_grad]
        norm = clip_gradients(trained(self.model.vae), limit, self.ctx).item()
        if self.model.loss.discriminator is not None:
            clip_gradients(trained(self.model.loss.discriminator), limit, self.ctx)
        return norm

    def _tokens_per_sample(self, batch: dict) -> int:
        """Latent positions per clip."""
        t, h, w = batch["video"].shape[2:]
        lt, lh, lw = self.model.vae.latent_size((t, h, w))
        return lt * lh * lw

    # -- evaluation, samples, the end ------------------------------------------------------------

    def fixed_clips(self) -> list[torch.Tensor]:
        """The clips every evaluation reconstructs: the hold-out, else the first training clips."""
        if self._fixed_clips is None:
            items = self.data.holdout or [self.data._load(i, 0)
                                          for i in range(min(self.cfg.logging.sample_clips, len(self.data.dataset)))]
            self._fixed_clips = [item["video"].float() for item in items]
        return self._fixed_clips

    @torch.no_grad()
    def reconstructions(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(clip, reconstruction) pairs [3, T, H, W] in [-1, 1], posterior mode, EMA weights if any."""
        vae = self.model.vae
        was_training = vae.training
        vae.eval()
        try:
            with self._ema_weights():
                pairs = []
                for clip in self.fixed_clips():
                    x = clip[None].to(self.device)
                    recon = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
                    pairs.append((clip, recon[0].float().cpu()))
                return pairs
        finally:
            vae.train(was_training)

    def evaluate(self) -> dict[str, float]:
        from kinema.vae.metrics import psnr, ssim

        pairs = self.reconstructions()
        unit = [((a + 1) / 2, (b + 1) / 2) for a, b in pairs]
        n = len(pairs)
        return {"eval/rec_loss": sum((a - b).abs().mean().item() for a, b in pairs) / n,
                "eval/psnr": sum(psnr(a, b, channel_dim=0).item() for a, b in unit) / n,
                "eval/ssim": sum(ssim(a, b, channel_dim=0).item() for a, b in unit) / n}

    def held_out_loss(self, use_ema: bool = False, seed: int = 12345) -> float:
        """Mean L1 reconstruction error on the fixed clips (EMA weights when there is an EMA)."""
        return self.evaluate()["eval/rec_loss"]

    def sample_videos(self) -> list[Sample]:
        """Original | reconstruction side by side (frames joined along the width), with PSNR and SSIM."""
        from kinema.core.shapes import FPS
        from kinema.core.video import to_uint8
        from kinema.vae.metrics import psnr, ssim

        samples = []
        for i, (clip, recon) in enumerate(self.reconstructions()):
            scores = {"psnr": psnr((clip + 1) / 2, (recon + 1) / 2, channel_dim=0).item(),
                      "ssim": ssim((clip + 1) / 2, (recon + 1) / 2, channel_dim=0).item()}
            frames = to_uint8(torch.cat([clip, recon], dim=-1))
            caption = f"clip {i}: original | reconstruction, psnr {scores['psnr']:.2f} dB, ssim {scores['ssim']:.4f}"
            samples.append(Sample(frames, float(FPS), caption, scores))
        return samples

    def finish(self) -> None:
        """The trained VAE (EMA weights if any) as a VAE folder, ``<run folder>/vae``, that load_vae reads."""
        from kinema.vae.train import save_atomic

        if self.ctx.is_main:
            with self._ema_weights():
                path = save_atomic(self.model.vae, self.out_dir / "vae")
            self.log.info(f"wrote the trained VAE to {path}")
