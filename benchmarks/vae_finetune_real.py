"""Real video: train a small CausalVideoVAE briefly and compare held-out reconstructions with its untrained
inflation (PSNR / SSIM per clip and mean), then tiled vs untiled output of the trained model.

Clips: the animated WebP files of comfyui-workflow-templates-media-video (a test-only dependency).
The starting point is the tail inflation of a randomly initialised SD-layout AutoencoderKL (no
pretrained 2-D weights exist offline), so "untrained" means that inflation.

    python benchmarks/vae_finetune_real.py [--steps 400] [--train-clips 12] [--held-out 6]
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from kinema.vae.data import load_clip
from kinema.vae.inflate import inflate_autoencoder_kl
from kinema.vae.loading import load_vae
from kinema.vae.metrics import video_metrics


def clips() -> list[Path]:
    import comfyui_workflow_templates_media_video as pkg

    return sorted(Path(pkg.__file__).parent.rglob("*.webp"))


def evaluate(vae, held: list[tuple[str, torch.Tensor]]) -> list[tuple[str, dict]]:
    rows = []
    with torch.no_grad():
        for name, clip in held:
            recon = vae.reconstruct(clip[None])[0].clamp(-1, 1)
            unit = lambda v: v.add(1).mul(127.5).round().div(255).transpose(0, 1)
            rows.append((name, video_metrics(unit(clip), unit(recon))))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--train-clips", type=int, default=12)
    ap.add_argument("--held-out", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=32, help="training crop")
    ap.add_argument("--eval-resolution", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default="outputs/vae_finetune_real")
    ap.add_argument("--load", help="skip training: report tiling for a VAE saved by an earlier run")
    args = ap.parse_args()
    torch.manual_seed(0)
    paths = clips()
    train_paths, held_paths = paths[: args.train_clips], paths[-args.held_out :]
    held = [(p.name, load_clip(p, 17, args.eval_resolution)) for p in held_paths]
    if args.load:
        tiling_report(load_vae(args.load), held)
        return
    vae2d = AutoencoderKL(block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                          up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8, layers_per_block=1,
                          latent_channels=4, sample_size=args.resolution)
    vae = inflate_autoencoder_kl(vae2d, init="tail", attn_impl="fixed")
    print(f"model: {sum(p.numel() for p in vae.parameters()):,} parameters, compression "
          f"{vae.temporal_compression}x{vae.spatial_compression}x{vae.spatial_compression}; "
          f"train {len(train_paths)} clips, held out {len(held_paths)} clips (17 frames, {args.eval_resolution}^2)")
    before = evaluate(vae, held)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "clips").mkdir(parents=True)
    for path in train_paths:
        shutil.copy(path, out / "clips" / path.name)
    vae.save_pretrained(out / "init")
    t0 = time.time()
    # the user's path: `kinema vae train` runs the shared trainer (run folder out/run, the VAE in out/run/vae)
    subprocess.run([sys.executable, "-m", "kinema.core.cli", "vae", "train", str(out / "clips"), "-o", str(out / "run"),
                    "--init", str(out / "init"), "--steps", str(args.steps), "--batch-size", "2", "--frames", "9",
                    "--resolution", str(args.resolution), "--lr", str(args.lr), "--sample-every", "0",
                    "--no-progress"], check=True)
    print(f"trained {args.steps} steps in {time.time() - t0:.0f} s")
    vae = load_vae(out / "run" / "vae")
    after = evaluate(vae, held)

    width = max(len(n) for n, _ in before)
    header = f"{'PSNR before':>11} {'PSNR after':>10}  {'SSIM before':>11} {'SSIM after':>10}"
    print(f"\n{'held-out clip':<{width}}  {header}")
    for (name, b), (_, a) in zip(before, after):
        print(f"{name:<{width}}  {b['psnr']:11.2f} {a['psnr']:10.2f}  {b['ssim']:11.4f} {a['ssim']:10.4f}")
    mean = lambda rows, k: sum(r[k] for _, r in rows) / len(rows)
    print(f"{'mean':<{width}}  {mean(before, 'psnr'):11.2f} {mean(after, 'psnr'):10.2f}  "
          f"{mean(before, 'ssim'):11.4f} {mean(after, 'ssim'):10.4f}")

    tiling_report(vae, held)


def tiling_report(vae, held) -> None:
    print("\ntiled (32 px tiles, 9-frame windows) vs untiled output of the trained model, PSNR dB:")
    settings = {
        "as released (per-tile GroupNorm)": {"norm_stats": "tile", "tile_halo": 0, "tile_context_t": 0},
        "shared GroupNorm statistics": {"norm_stats": "shared", "tile_halo": 0, "tile_context_t": 0},
        "shared + halo 2 + time context 1": {"norm_stats": "shared", "tile_halo": 2, "tile_context_t": 1},
    }
    with torch.no_grad():
        for name, kw in settings.items():
            scores = []
            for _, clip in held:
                vae.disable_tiling()
                ref = vae.reconstruct(clip[None])
                vae.enable_tiling(tile_sample_min_size=32, tile_sample_min_size_t=9, **kw)
                scores.append(10 * math.log10(4.0 / (ref - vae.reconstruct(clip[None])).pow(2).mean().item()))
            vae.disable_tiling()
            print(f"  {name:<34} mean {sum(scores) / len(scores):6.2f}  min {min(scores):6.2f}")

if __name__ == "__main__":
    main()
