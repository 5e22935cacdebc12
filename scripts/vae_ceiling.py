"""What the shapes analyser reads back from a VAE's reconstructions of synthetic clips: the ceiling of any DiT
trained on that VAE's latents (it cannot draw sharper corners or purer colours than the decoder gives back).

    python scripts/vae_ceiling.py outputs/default-model/synth/meta.csv outputs/default-model/vae [more VAE folders]

For each VAE: colour, shape and direction accuracy on the first --clips clips of a `kinema data synth` table, as
made and after encode-decode with --noise stds of Gaussian error on every (calibrated) latent, the DiT's error,
with accuracy per colour and per shape. Run it on a new VAE before spending an hour on a DiT.
"""

import argparse
import csv

import torch

from kinema.core.video import read_video, to_float, to_uint8
from kinema.sample.adherence import ATTRIBUTES, PromptCase, score_videos, summarise, summarise_by_value
from kinema.vae.loading import load_vae


def score(cases: list[PromptCase], videos) -> str:
    """One line: overall accuracy, then per asked colour and shape (eval adherence's scoring, on clips)."""
    rows = score_videos(cases, [to_uint8(video) for video in videos])
    overall = summarise(rows)["all"]
    by_value = summarise_by_value(rows)
    per = {name: s[key] for key in ("colour", "shape") for name, s in by_value[key].items() if s["n"]}
    return ("  ".join(f"{a} {overall[a]:6.1%}" for a in ATTRIBUTES) + "   per colour/shape: "
            + " ".join(f"{name} {value:.0%}" for name, value in per.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", help="meta.csv of `kinema data synth` (path, colour, shape, direction)")
    parser.add_argument("vaes", nargs="+", help="VAE folders (calibrated: latents_mean set)")
    parser.add_argument("--clips", type=int, default=240)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4])
    parser.add_argument("--batch-size", type=int, default=40)
    args = parser.parse_args()

    with open(args.table, newline="") as f:
        rows = list(csv.DictReader(f))[: args.clips]
    cases = [PromptCase(r.get("text", ""), r["colour"], r["shape"], r["direction"], held_out=False) for r in rows]
    clips = torch.stack([to_float(read_video(r["path"]).frames) for r in rows])
    print(f"{'as made':28s}", score(cases, clips))
    for path in args.vaes:
        vae = load_vae(path).eval()
        with torch.no_grad():
            z = torch.cat([vae.encode_video(b, sample=False) for b in clips.split(args.batch_size)])
            for noise in args.noise:
                # encode_video's latents are calibrated (unit std per channel) times scaling_factor
                error = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
                noisy = z + noise * vae.scaling_factor * error
                decoded = torch.cat([vae.decode_video(b) for b in noisy.split(args.batch_size)]).clamp(-1, 1)
                print(f"{path[-20:]:>20s} +{noise:.1f} std", score(cases, decoded), flush=True)


if __name__ == "__main__":
    main()
