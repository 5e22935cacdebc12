"""Write docs/default-model-sample.webp: the default model's videos for a few prompts, side by side, enlarged.

    python scripts/default_model_preview.py [--model DIR] [-o docs/default-model-sample.webp]
"""

from __future__ import annotations

import argparse

import torch

from kinema.core.video import write_video
from kinema.sample.cli import load_pipeline

PROMPTS = ("a red circle moving right", "a blue square moving up", "a yellow triangle moving left",
           "a green circle moving down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="pipeline folder (default: the built-in default model)")
    parser.add_argument("-o", "--output", default="docs/default-model-sample.webp")
    parser.add_argument("--scale", type=int, default=4, help="pixel enlargement (nearest neighbour)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe, _ = load_pipeline(args.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(list(PROMPTS), generator=torch.Generator().manual_seed(args.seed), output_type="uint8")
    frames = out.frames  # [B, T, H, W, 3]
    gap = torch.full((*frames.shape[1:2], frames.shape[2], 2, 3), 64, dtype=torch.uint8)
    row = torch.cat([torch.cat([clip, gap], dim=2) for clip in frames], dim=2)[:, :, :-2]
    row = row.repeat_interleave(args.scale, dim=1).repeat_interleave(args.scale, dim=2)
    print(write_video(args.output, row, fps=out.fps))
    print("prompts, left to right: " + "; ".join(PROMPTS))


if __name__ == "__main__":
    main()
