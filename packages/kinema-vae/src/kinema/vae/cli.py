"""`kinema vae ...`: inflate, reconstruct, eval, train."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import torch

from kinema.core import KinemaError
from kinema.core.validate import BoundedInt, FiniteFloat, check_number

from .data import list_videos, load_clip
from .metrics import format_table, video_metrics
from .output_paths import check_model_folder, check_output_file, check_output_folder
from kinema.core.progress import note, progress_bar

# clips are cropped to multiples of the VAE's compression (8 px), and SSIM's window needs 11 px: 16 is the least
MIN_RESOLUTION = 16


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
    f = click.option("--micro-batch-size", type=BoundedInt(1), default=None,
                     help="Frames per step of a frame-wise VAE.")(f)
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
    f = click.option("--resolution", type=BoundedInt(0), default=256, show_default=True,
                     help=f"Short side resize, then center crop (0: keep the size; else at least {MIN_RESOLUTION}).")(f)
    f = click.option("--frames", type=BoundedInt(0), default=17, show_default=True,
                     help="Frames read from the start of each clip (0: all).")(f)
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bar on stderr (default: shown when stderr is a terminal).")(f)


def _check_resolution(resolution: int) -> None:
    if resolution:
        check_number(resolution, "--resolution", minimum=MIN_RESOLUTION, integer=True,
                     fix=f"use 0 to keep each clip's size, or at least {MIN_RESOLUTION} (the VAE crops to "
                         "multiples of 8 px and SSIM needs 11 px)")


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
        note(f"warning: {w.message}")
    z = vae.encode_video(clip[None], sample=sample)
    recon = vae.decode_video(z)[0].clamp(-1, 1)
    return clip, recon


def _to_unit(video):  # [3,T,H,W] in [-1,1] -> [T,3,H,W] in [0,1], quantised like a written file
    return video.add(1).mul(127.5).round().div(255).permute(1, 0, 2, 3)


def _output_targets(src, out, paths: list[Path], ext: str, frames: int) -> list[Path]:
    """Where each reconstruction goes, checked before any work: a writable format and place, no clip
    written over another one's output or over a source clip."""
    from kinema.core.video import WRITABLE

    out = Path(out)
    formats = ", ".join(sorted(WRITABLE))
    if Path(src).is_file() and out.suffix != "":
        targets = [check_output_file(out)]
        if out.suffix.lower() not in WRITABLE:
            raise KinemaError(f"-o {str(out)!r}: cannot write {out.suffix!r} videos; use one of {formats}")
    else:
        if ext.lower() not in WRITABLE:
            raise KinemaError(f"--ext {ext!r} cannot be written; use one of {formats}")
        check_output_folder(out)
        root = Path(src) if Path(src).is_dir() else None  # a folder's layout is mirrored, so names never collide
        targets = [check_output_file(out / (p.relative_to(root).with_suffix(ext) if root else p.stem + ext))
                   for p in paths]
    if targets[0].suffix.lower() == ".png" and frames != 1:
        raise KinemaError(f"--frames={frames}: a .png holds one frame; use --frames 1, or write .mp4, .webp or .gif")
    sources = {p.resolve(): p for p in paths}
    claimed: dict[Path, Path] = {}
    for path, target in zip(paths, targets):
        key = target.resolve()
        if key in sources:
            raise KinemaError(f"-o {str(target)!r} is the source clip {str(sources[key])!r}; write elsewhere")
        if key in claimed:
            raise KinemaError(f"{str(claimed[key])!r} and {str(path)!r} would both be written to {str(target)!r}; "
                              "rename one or reconstruct them in separate runs")
        claimed[key] = path
    return targets


@vae_group.command("reconstruct")
@click.argument("src", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="Output file (one clip) or folder.")
@_vae_options
@_clip_options
@click.option("--sample/--mode", default=False, help="Sample the posterior instead of taking its mode.")
@click.option("--ext", default=".mp4", show_default=True, help="Output format when OUT is a folder.")
@click.option("--side-by-side", is_flag=True,
              help="Write original | reconstruction side by side (twice as wide), to compare by eye.")
@_lpips_option
def reconstruct_command(src, out, vae_path, micro_batch_size, attn, tiling, frames, resolution, frame_policy,
                        progress, sample, ext, side_by_side, lpips_backbone, lpips_linear):
    """Encode and decode SRC (a video or a folder), write the reconstructions, print PSNR/SSIM per clip."""
    from kinema.core.video import probe_video, to_uint8, write_video

    _check_resolution(resolution)
    paths = list_videos(src)
    targets = _output_targets(src, out, paths, ext, frames)
    lpips = _lpips(lpips_backbone, lpips_linear)
    vae = _load(vae_path, attn, micro_batch_size, tiling)
    rows = []
    for path, target in zip(progress_bar(paths, desc="reconstruct", enabled=progress, unit="clip"), targets):
        clip, recon = _reconstruct(vae, path, frames, resolution, frame_policy, sample)
        video = torch.cat([clip, recon], dim=-1) if side_by_side else recon  # [3,T,H,W]: W is the last dim
        write_video(target, to_uint8(video), probe_video(path).fps)
        rows.append((path.name, video_metrics(_to_unit(clip), _to_unit(recon), lpips)))
    click.echo(format_table(rows))


@vae_group.command("eval")
@click.argument("src", type=click.Path())
@click.option("--vae", "vae_path", type=click.Path(), help="VAE folder; reconstructs SRC in memory.")
@click.option("--reconstructed", type=click.Path(file_okay=False),
              help="Compare SRC with already reconstructed videos in this folder (paired by sorted name).")
@click.option("--micro-batch-size", type=BoundedInt(1), default=None)
@click.option("--attn", type=click.Choice(["compat_v100", "fixed"]), default=None)
@click.option("--tiling/--no-tiling", default=False)
@_clip_options
@_lpips_option
def eval_command(src, vae_path, reconstructed, micro_batch_size, attn, tiling, frames, resolution, frame_policy,
                 progress, lpips_backbone, lpips_linear):
    """PSNR / SSIM (/ LPIPS) per clip and their mean, for the clips in SRC."""
    if bool(vae_path) == bool(reconstructed):
        raise KinemaError("give exactly one of --vae (reconstruct in memory) or --reconstructed DIR")
    _check_resolution(resolution)
    lpips = _lpips(lpips_backbone, lpips_linear)
    paths = list_videos(src)
    rows = []
    if vae_path:
        vae = _load(vae_path, attn, micro_batch_size, tiling)
        for path in progress_bar(paths, desc="eval", enabled=progress, unit="clip"):
            clip, recon = _reconstruct(vae, path, frames, resolution, frame_policy, sample=False)
            rows.append((path.name, video_metrics(_to_unit(clip), _to_unit(recon), lpips)))
    else:
        recs = list_videos(reconstructed)
        if len(recs) != len(paths):
            raise KinemaError(f"{len(paths)} videos in {src!r} but {len(recs)} in {reconstructed!r}; pairs are "
                           "matched by sorted name, so both folders need the same clips")
        for real_path, rec_path in progress_bar(list(zip(paths, recs)), desc="eval", enabled=progress, unit="clip"):
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
    check_model_folder(out)
    vae = inflate_autoencoder_kl(AutoencoderKL.from_pretrained(sd_vae, low_cpu_mem_usage=False), init=init,
                                 attn_impl=attn)
    save_atomic(vae, out)
    click.echo(f"wrote {out} ({sum(p.numel() for p in vae.parameters()):,} parameters, {init} init, {attn} attention)")


@vae_group.command("train")
@click.argument("data", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, metrics, logs, samples; the trained VAE is written to OUT/vae.")
@click.option("--init", "init_path", type=click.Path(), help="Start from this VAE folder (e.g. an inflated SD VAE).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Or build from a config JSON.")
@click.option("--steps", type=BoundedInt(1), default=1000, show_default=True)
@click.option("--batch-size", type=BoundedInt(1), default=1, show_default=True)
@click.option("--frames", type=BoundedInt(1), default=17, show_default=True)
@click.option("--resolution", type=BoundedInt(8), default=256, show_default=True,
              help="Short side resize, then a square center crop.")
@click.option("--lr", type=FiniteFloat(0, None), default=1e-5, show_default=True)
@click.option("--kl-weight", type=FiniteFloat(0, None), default=1e-6, show_default=True)
@click.option("--rec-loss", type=click.Choice(["l1", "l2"]), default="l1", show_default=True)
@click.option("--disc", type=click.Choice(["none", "2d", "3d"]), default="none", show_default=True,
              help="PatchGAN discriminator (hinge loss), on from --disc-start.")
@click.option("--disc-start", type=BoundedInt(0), default=2001, show_default=True)
@click.option("--perceptual", default=None, help="Perceptual loss name (lpips-vgg, lpips-alex).")
@click.option("--lpips-backbone", type=click.Path(dir_okay=False))
@click.option("--lpips-linear", type=click.Path(dir_okay=False))
@click.option("--latent-noise", type=FiniteFloat(0, None), default=0.0, show_default=True,
              help="Gaussian noise added to the latents before decoding, in units of each channel's std: "
                   "keeps what the decoder must tell apart further apart than a diffusion model's error.")
@click.option("--decoder-only", is_flag=True,
              help="Train the decoder alone (from --init): the encoder is frozen, so its latents, their calibration "
                   "and a diffusion model trained on them stay valid.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=BoundedInt(1), default=None,
              help="Steps between checkpoints (default: a tenth of --steps).")
@click.option("--sample-every", type=BoundedInt(0), default=None,
              help="Steps between logged reconstructions with PSNR/SSIM (default: a fifth of --steps; 0: none).")
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its latest checkpoint.")
@click.option("--overwrite", is_flag=True,
              help="Start over in an OUT that holds a run: the old run (checkpoints, logs, its vae/) is moved into "
                   "OUT/replaced-<time>/.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: shown when stderr is a terminal).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other key of the shared training config, e.g. logging.tensorboard=true or "
                   "optim.ema_decay=0.999.")
def train_command(data, out, init_path, config_path, steps, batch_size, frames, resolution, lr, kl_weight, rec_loss,
                  disc, disc_start, perceptual, lpips_backbone, lpips_linear, latent_noise, decoder_only, seed,
                  checkpoint_every, sample_every, resume, overwrite, progress, overrides):
    """Train a video VAE on the videos under DATA, on kinema-train's shared trainer.

    A thin front: it builds a `task: vae` training config (OUT/config.yaml shows it) and runs it, so the run
    gets checkpoints, exact resume (--resume), data parallelism (torchrun ... -m kinema.train OUT/config.yaml),
    a progress bar, TensorBoard / wandb and a run folder. The upstream optimiser: Adam(0.5, 0.9) at --lr,
    gradient norm clipped at 1.0."""
    if bool(init_path) == bool(config_path):
        raise KinemaError("give exactly one of --init VAE_FOLDER or --config CONFIG.json")
    if decoder_only and not init_path:
        raise KinemaError("--decoder-only keeps a trained encoder: give the VAE folder to start from with --init")
    if resume and overwrite:
        raise KinemaError("--resume continues the run in OUT and --overwrite moves it aside: give one of them")
    try:
        from kinema.train.checkpoint import RunFolderWords, claim_run_folder, move_run_aside
        from kinema.train.config import apply_overrides, from_dict, validate
        from kinema.train.trainer import run
    except ImportError:
        raise KinemaError("kinema vae train runs on kinema-train's trainer: pip install kinema-train") from None
    vae: dict = {"pretrained": str(init_path)} if init_path else {"kwargs": _read_vae_config(config_path)}
    videos = list_videos(data)
    table = Path(out) / "videos.csv"
    every = max(1, steps // 20)
    values = {
        "task": "vae",
        "vae": vae,
        "data": {"source": "table", "path": str(table), "num_frames": frames, "image_size": [resolution, resolution],
                 "batch_size": batch_size, "caption_dropout": 0.0},
        "optim": {"lr": lr, "betas": [0.5, 0.9], "weight_decay": 0.0, "grad_clip": 1.0, "ema_decay": 0.0,
                  "max_steps": steps, "seed": seed},
        "vae_loss": {"kl_weight": kl_weight, "reconstruction": rec_loss, "perceptual": perceptual,
                     "lpips_backbone": lpips_backbone, "lpips_linear": lpips_linear,
                     "discriminator": None if disc == "none" else disc, "disc_start": disc_start,
                     "latent_noise": latent_noise, "decoder_only": decoder_only},
        "checkpoint": {"dir": str(out), "every": checkpoint_every or max(1, steps // 10),
                       "resume": "latest" if resume else None, "overwrite": overwrite},
        "logging": {"every": every, "sample_every": max(1, steps // 5) if sample_every is None else sample_every,
                    "progress": sys.stderr.isatty() if progress is None else progress},
    }
    cfg = from_dict(apply_overrides(values, list(overrides)))
    validate(cfg)
    # the trainer checks the run folder too, in its config's words; this check speaks this command's options and
    # comes before the video table is written into OUT. With --overwrite the old run moves aside here, its video
    # table with it (the trainer then finds no run to move)
    aside = claim_run_folder(cfg.checkpoint.dir, cfg.checkpoint.resume, cfg.checkpoint.overwrite,
                             RunFolderWords(folder="-o", resume="--resume", overwrite="pass --overwrite"))
    if aside is not None:
        moved = move_run_aside(out, aside, also=(table.name,))
        click.echo(f"--overwrite: the previous run in {out} was moved to {moved}", err=True)
    _write_video_table(videos, table)
    run(cfg)
    click.echo(f"wrote {Path(out) / 'vae'}")


def _read_vae_config(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise KinemaError(f"cannot read config {path!r}: {exc}") from None


def _write_video_table(paths: list[Path], table: Path) -> None:
    """The training videos as the table the shared trainer reads (path, text), written atomically in the run folder."""
    import csv
    import io
    import os

    table.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "text"])
    writer.writerows([str(p.resolve()), ""] for p in paths)
    tmp = table.with_name(f".videos.csv.tmp-{os.getpid()}")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, table)


@vae_group.command("calibrate")
@click.argument("data", type=click.Path())
@click.option("--vae", "vae_path", required=True, type=click.Path(), help="CausalVideoVAE folder to calibrate.")
@click.option("-o", "--out", type=click.Path(), help="Write the calibrated VAE here (default: update --vae in place).")
@click.option("--clips", type=BoundedInt(1), default=256, show_default=True,
              help="Clips to measure (the first ones, sorted).")
@click.option("--frames", type=BoundedInt(1), default=17, show_default=True, help="Frames per clip (1+4k).")
@click.option("--resolution", type=BoundedInt(8), default=256, show_default=True,
              help="Short side resize, then center crop (a multiple of 8).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: shown when stderr is a terminal).")
def calibrate_command(data, vae_path, out, clips, frames, resolution, progress):
    """Store the per-channel mean and std of the latents of DATA's clips in the VAE config.

    encode_video then gives latents of zero mean and unit std per channel (scaling_factor is set to 1),
    which is what the diffusion model's noise assumes."""
    from .calibrate import latent_statistics
    from .causal_vae import CausalVideoVAE
    from .interface import fit_num_frames
    from .loading import load_vae
    from .train import save_atomic

    paths = list_videos(data)[:clips]
    vae = load_vae(vae_path)
    if not isinstance(vae, CausalVideoVAE):
        raise KinemaError(f"{vae_path!r} holds a {type(vae).__name__}; calibrate works on a CausalVideoVAE "
                       "(frame-wise SD VAEs keep their published scaling_factor)")
    check_model_folder(out or vae_path, "-o" if out else "--vae")
    tc, sc = vae.temporal_compression, vae.spatial_compression
    if (frames - 1) % tc:  # measured as the diffusion model will see them: whole 1+4k clips, whole latents
        raise KinemaError(f"--frames={frames} is not 1+{tc}k frames; use {fit_num_frames(frames, tc)} or "
                          f"{fit_num_frames(frames, tc, 'pad')}")
    if resolution % sc:
        raise KinemaError(f"--resolution={resolution} is not a multiple of {sc}; use {resolution - resolution % sc} "
                          f"or {resolution - resolution % sc + sc}")
    mean, std = latent_statistics(vae, paths, frames, resolution, progress=progress)
    vae.register_to_config(latents_mean=mean, latents_std=std, scaling_factor=1.0)
    save_atomic(vae, out or vae_path)
    click.echo(f"latents_mean {mean}\nlatents_std  {std}\nwrote {out or vae_path}")
