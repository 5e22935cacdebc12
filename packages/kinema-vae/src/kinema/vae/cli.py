"""`kinema vae ...`: inflate, reconstruct, eval, train."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from kinema.core import KinemaError

from .data import ClipBank, list_videos, load_clip
from .metrics import format_table, video_metrics


@click.group("vae")
def vae_group() -> None:
    """Video VAEs: inflate an SD VAE, reconstruct and evaluate clips, train."""


def _lpips_option(f):
    f = click.option("--lpips-linear", type=click.Path(dir_okay=False), help="lpips v0.1 linear heads (alex.pth).")(f)
    return click.option("--lpips-backbone", type=click.Path(dir_okay=False),
                        help="torchvision AlexNet state dict; with --lpips-linear adds LPIPS to the table.")(f)


def _vae_options(f):
    f = click.option("--tiling/--no-tiling", default=False, help="Spatial+temporal tiling (bounded memory).")(f)
    f = click.option("--attn", type=click.Choice(["compat_v100", "fixed"]), default=None,
                     help="Attention of a causal VAE (default: from its config).")(f)
    f = click.option("--micro-batch-size", type=int, default=None, help="Frames per step of a frame-wise VAE.")(f)
    return click.option("--vae", "vae_path", required=True, type=click.Path(),
                        help="VAE folder: kinema save, upstream Open-Sora-Plan layout, or a diffusers "
                            "AutoencoderKL.")(f)


def _load(vae_path, attn, micro_batch_size, tiling):
    from .loading import load_vae

    vae = load_vae(vae_path, attn_impl=attn, micro_batch_size=micro_batch_size)
    if tiling:
        vae.enable_tiling()
    return vae


def _lpips(backbone, linear):
    if not backbone and not linear:
        return None
    from .losses.perceptual import LPIPS

    return LPIPS("alex", backbone, linear)


def _clip_options(f):
    f = click.option("--frame-policy", type=click.Choice(["trim", "pad"]), default="trim",
                     help="Frame counts that are not 1+4k: trim the tail or repeat the last frame.")(f)
    f = click.option("--resolution", type=int, default=256, show_default=True,
                     help="Short side resize, then center crop (0: keep the size).")(f)
    return click.option("--frames", type=int, default=17, show_default=True,
                        help="Frames read from the start of each clip (0: all).")(f)


@torch.no_grad()
def _reconstruct(vae, path, frames, resolution, frame_policy, sample):
    import warnings

    from .interface import format_video_shape

    clip = load_clip(path, frames or None, resolution or None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = format_video_shape(clip[None], vae.temporal_compression, vae.spatial_compression, frame_policy,
                                  name=Path(path).name)[0]
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    z = vae.encode_video(clip[None], sample=sample)
    recon = vae.decode_video(z)[0].clamp(-1, 1)
    return clip, recon


def _to_unit(video):  # [3,T,H,W] in [-1,1] -> [T,3,H,W] in [0,1], quantised like a written file
    return video.add(1).mul(127.5).round().div(255).permute(1, 0, 2, 3)


@vae_group.command("reconstruct")
@click.argument("src", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="Output file (one clip) or folder.")
@_vae_options
@_clip_options
@click.option("--sample/--mode", default=False, help="Sample the posterior instead of taking its mode.")
@click.option("--ext", default=".mp4", show_default=True, help="Output format when OUT is a folder.")
@_lpips_option
def reconstruct_command(src, out, vae_path, micro_batch_size, attn, tiling, frames, resolution, frame_policy,
                        sample, ext, lpips_backbone, lpips_linear):
    """Encode and decode SRC (a video or a folder), write the reconstructions, print PSNR/SSIM per clip."""
    from kinema.core.video import probe_video, to_uint8, write_video

    vae = _load(vae_path, attn, micro_batch_size, tiling)
    lpips = _lpips(lpips_backbone, lpips_linear)
    paths = list_videos(src)
    out = Path(out)
    single = Path(src).is_file() and out.suffix != ""
    rows = []
    for path in paths:
        clip, recon = _reconstruct(vae, path, frames, resolution, frame_policy, sample)
        target = out if single else out / (path.stem + ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_video(target, to_uint8(recon), probe_video(path).fps)
        rows.append((path.name, video_metrics(_to_unit(clip), _to_unit(recon), lpips)))
    click.echo(format_table(rows))


@vae_group.command("eval")
@click.argument("src", type=click.Path())
@click.option("--vae", "vae_path", type=click.Path(), help="VAE folder; reconstructs SRC in memory.")
@click.option("--reconstructed", type=click.Path(file_okay=False),
              help="Compare SRC with already reconstructed videos in this folder (paired by sorted name).")
@click.option("--micro-batch-size", type=int, default=None)
@click.option("--attn", type=click.Choice(["compat_v100", "fixed"]), default=None)
@click.option("--tiling/--no-tiling", default=False)
@_clip_options
@_lpips_option
def eval_command(src, vae_path, reconstructed, micro_batch_size, attn, tiling, frames, resolution, frame_policy,
                 lpips_backbone, lpips_linear):
    """PSNR / SSIM (/ LPIPS) per clip and their mean, for the clips in SRC."""
    if bool(vae_path) == bool(reconstructed):
        raise KinemaError("give exactly one of --vae (reconstruct in memory) or --reconstructed DIR")
    lpips = _lpips(lpips_backbone, lpips_linear)
    paths = list_videos(src)
    rows = []
    if vae_path:
        vae = _load(vae_path, attn, micro_batch_size, tiling)
        for path in paths:
            clip, recon = _reconstruct(vae, path, frames, resolution, frame_policy, sample=False)
            rows.append((path.name, video_metrics(_to_unit(clip), _to_unit(recon), lpips)))
    else:
        recs = list_videos(reconstructed)
        if len(recs) != len(paths):
            raise KinemaError(f"{len(paths)} videos in {src!r} but {len(recs)} in {reconstructed!r}; pairs are "
                           "matched by sorted name, so both folders need the same clips")
        for real_path, rec_path in zip(paths, recs):
            rec = load_clip(rec_path, frames or None, resolution or None)
            real = load_clip(real_path, rec.shape[1], resolution or None)
            rows.append((real_path.name, video_metrics(_to_unit(real), _to_unit(rec), lpips)))
    click.echo(format_table(rows))


@vae_group.command("inflate")
@click.argument("sd_vae", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(), help="Folder for the CausalVideoVAE.")
@click.option("--init", "init", type=click.Choice(["tail", "center", "average"]), default="tail", show_default=True)
@click.option("--attn", type=click.Choice(["compat_v100", "fixed"]), default="fixed", show_default=True)
def inflate_command(sd_vae, out, init, attn):
    """Inflate a diffusers AutoencoderKL folder into a CausalVideoVAE."""
    from diffusers import AutoencoderKL

    from .inflate import inflate_autoencoder_kl
    from .train import save_atomic

    if not (Path(sd_vae) / "config.json").is_file():
        raise KinemaError(f"{sd_vae!r} is not a diffusers AutoencoderKL folder (no config.json)")
    vae = inflate_autoencoder_kl(AutoencoderKL.from_pretrained(sd_vae, low_cpu_mem_usage=False), init=init,
                                 attn_impl=attn)
    save_atomic(vae, out)
    click.echo(f"wrote {out} ({sum(p.numel() for p in vae.parameters()):,} parameters, {init} init, {attn} attention)")


@vae_group.command("train")
@click.argument("data", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="Folder for the trained VAE.")
@click.option("--init", "init_path", type=click.Path(), help="Start from this VAE folder (e.g. an inflated SD VAE).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Or build from a config JSON.")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--frames", type=int, default=17, show_default=True)
@click.option("--resolution", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--kl-weight", type=float, default=1e-6, show_default=True)
@click.option("--rec-loss", type=click.Choice(["l1", "l2"]), default="l1", show_default=True)
@click.option("--disc", type=click.Choice(["none", "2d", "3d"]), default="none", show_default=True,
              help="PatchGAN discriminator (hinge loss), on from --disc-start.")
@click.option("--disc-start", type=int, default=2001, show_default=True)
@click.option("--perceptual", default=None, help="Perceptual loss name (lpips-vgg, lpips-alex).")
@click.option("--lpips-backbone", type=click.Path(dir_okay=False))
@click.option("--lpips-linear", type=click.Path(dir_okay=False))
@click.option("--latent-noise", type=float, default=0.0, show_default=True,
              help="Gaussian noise added to the latents before decoding, in units of each channel's std: "
                   "keeps what the decoder must tell apart further apart than a diffusion model's error.")
@click.option("--seed", type=int, default=0, show_default=True)
def train_command(data, out, init_path, config_path, steps, batch_size, frames, resolution, lr, kl_weight, rec_loss,
                  disc, disc_start, perceptual, lpips_backbone, lpips_linear, latent_noise, seed):
    """Train a video VAE on the videos under DATA (single device)."""
    from .causal_vae import CausalVideoVAE
    from .loading import load_vae
    from .losses import VAELoss, build_perceptual_loss
    from .train import TrainConfig, save_atomic, train_vae

    if bool(init_path) == bool(config_path):
        raise KinemaError("give exactly one of --init VAE_FOLDER or --config CONFIG.json")
    if init_path:
        vae = load_vae(init_path)
    else:
        try:
            vae = CausalVideoVAE.from_config(json.loads(Path(config_path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise KinemaError(f"cannot read config {config_path!r}: {exc}") from None
    percep = None
    if perceptual:
        percep = build_perceptual_loss(perceptual, backbone=lpips_backbone, linear=lpips_linear)
    loss = VAELoss(kl_weight=kl_weight, reconstruction=rec_loss, perceptual=percep,
                   discriminator=None if disc == "none" else disc, disc_start=disc_start)
    bank = ClipBank(list_videos(data), resolution, max_frames=max(frames * 4, 64))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, num_frames=frames, lr=lr, seed=seed,
                      log_every=max(1, steps // 20), latent_noise=latent_noise)
    train_vae(vae, loss, bank, cfg, on_log=lambda s, e: click.echo(
        f"step {s:6d}  " + "  ".join(f"{k}={v:.4g}" for k, v in e.items() if k != "step")))
    save_atomic(vae, out)
    click.echo(f"wrote {out}")


@vae_group.command("calibrate")
@click.argument("data", type=click.Path())
@click.option("--vae", "vae_path", required=True, type=click.Path(), help="CausalVideoVAE folder to calibrate.")
@click.option("-o", "--out", type=click.Path(), help="Write the calibrated VAE here (default: update --vae in place).")
@click.option("--clips", type=int, default=256, show_default=True, help="Clips to measure (the first ones, sorted).")
@click.option("--frames", type=int, default=17, show_default=True)
@click.option("--resolution", type=int, default=256, show_default=True)
def calibrate_command(data, vae_path, out, clips, frames, resolution):
    """Store the per-channel mean and std of the latents of DATA's clips in the VAE config.

    encode_video then gives latents of zero mean and unit std per channel (scaling_factor is set to 1),
    which is what the diffusion model's noise assumes."""
    from .calibrate import latent_statistics
    from .causal_vae import CausalVideoVAE
    from .loading import load_vae
    from .train import save_atomic

    vae = load_vae(vae_path)
    if not isinstance(vae, CausalVideoVAE):
        raise KinemaError(f"{vae_path!r} holds a {type(vae).__name__}; calibrate works on a CausalVideoVAE "
                       "(frame-wise SD VAEs keep their published scaling_factor)")
    mean, std = latent_statistics(vae, list_videos(data)[:clips], frames, resolution)
    vae.register_to_config(latents_mean=mean, latents_std=std, scaling_factor=1.0)
    save_atomic(vae, out or vae_path)
    click.echo(f"latents_mean {mean}\nlatents_std  {std}\nwrote {out or vae_path}")
