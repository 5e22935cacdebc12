"""Where a pipeline loses a shape: real clips of it, noised to a level of the sampling schedule and denoised by
the pipeline from there, then read back by the shapes analyser (per size).

    python scripts/shapes_by_noise_level.py PIPELINE SYNTH/meta.csv [--shape square] [--clips 64] [--from 10,20,25]

Lines: the VAE alone (encode, decode), generation from noise (the same prompts), and one per starting step k of the
pipeline's schedule (level sigma_k). Where the share drops between two levels is where the DiT turns the shape into
another; if it is already low through the VAE, no DiT can draw it. Use clips the model was not trained on
(`kinema data synth --seed 77 --shape square`).
"""

import argparse

import numpy as np
import pandas as pd
import torch

from kinema.core.shapes import analyse
from kinema.core.video import read_video, to_float, to_uint8
from kinema.sample.adherence import short_prompt
from kinema.sample.cli import load_pipeline


def share(name: str, videos, shape: str, sizes: list[str]) -> str:
    right = np.array([analyse(video)["shape"] == shape for video in videos])
    sizes = np.array(sizes)
    per_size = " ".join(f"{s} {right[sizes == s].mean():.0%} ({(sizes == s).sum()})" for s in sorted(set(sizes)))
    return f"{name:>22}: {shape} {right.mean():6.1%} of {len(right)}   {per_size}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("table")
    parser.add_argument("--shape", default="square")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--from", dest="starts", default="10,15,20,25,28", help="starting steps k, comma-separated")
    parser.add_argument("--guidance", type=float, default=None, help="default: the pipeline folder's")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    pipe, _ = load_pipeline(args.pipeline, None)
    pipe.set_progress_bar_config(disable=True)
    table = pd.read_csv(args.table)
    table = table[table["shape"] == args.shape].head(args.clips)
    prompts = [short_prompt(c, args.shape, d) for c, d in zip(table["colour"], table["direction"])]
    sizes = table["size"].tolist()
    with torch.no_grad():
        clean = torch.cat([pipe.vae.encode_video(to_float(read_video(p).frames)[None], sample=False)
                           for p in table["path"]])
        decoded = [to_uint8(pipe.vae.decode_video(z[None])[0].clamp(-1, 1)) for z in clean]
    print(share("VAE alone", decoded, args.shape, sizes), flush=True)

    for start in [0] + [int(k) for k in args.starts.split(",")]:
        generator = torch.Generator().manual_seed(7)
        videos = []
        for i in range(0, len(prompts), args.batch):
            batch_clean = clean[i:i + args.batch]
            noise = torch.randn(batch_clean.shape, generator=generator)

            # after step start-1 the latents are at level sigma_start: put the noised clip there instead
            def from_the_clip(pipeline, step, timestep, tensors, start=start, batch_clean=batch_clean, noise=noise):
                if step + 1 != start:
                    return {}
                sigma = pipeline.scheduler.sigmas[step + 1]
                return {"latents": sigma * noise + (1 - sigma) * batch_clean}

            out = pipe(prompts[i:i + args.batch], generator=generator, output_type="uint8",
                       guidance_scale=args.guidance, callback_on_step_end=from_the_clip if start else None)
            videos += list(out.frames)
        name = "from noise" if start == 0 else f"from step {start} (σ {float(pipe.scheduler.sigmas[start]):.2f})"
        print(share(name, videos, args.shape, sizes), flush=True)


if __name__ == "__main__":
    main()
