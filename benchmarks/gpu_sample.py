"""Sampling speed of STDiT-XL/2 (random weights) on a GPU: seconds per step and per video, with and without
attention step caching and ``pipe.compile_transformer()``.

    python benchmarks/gpu_sample.py                                   # both sizes, all four variants, 100 steps
    python benchmarks/gpu_sample.py --sizes 16x32x32 --steps 100      # 16 frames of 256x256: about a minute
    python benchmarks/gpu_sample.py --sizes 64x64x64 --steps 10 --compile off
    python benchmarks/gpu_sample.py --smoke                           # toy STDiT on the CPU, seconds

Latent sizes are T x H x W (16x32x32 = 16 frames of 256x256, 64x64x64 = 64 frames of 512x512 with an 8x VAE);
the VAE and text encoder are left out (random caption features, latents in, latents out). bf16, IDDPM steps,
guidance on: each transformer call is a CFG batch of 2. The first run of each variant is a warm-up (2 steps;
with compile, that is where compilation happens) and is not timed. ``max|diff|`` compares the final latents
with the uncached run of the same size and compile setting.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

SIZES = ("16x32x32", "64x64x64")


def build_pipeline(latent: tuple[int, int, int], smoke: bool, device: str, dtype: torch.dtype):
    from kinema.core import lookup
    from kinema.dit.stdit import STDiT, STDiT_XL_2
    from kinema.sample import KinemaVideoPipeline
    from kinema.sample.testing import randomise_zero_layers

    torch.manual_seed(0)
    with torch.device(device):
        if smoke:
            transformer = STDiT(input_size=latent, hidden_size=48, depth=2, num_heads=4, caption_channels=32,
                                model_max_length=16)
        else:
            transformer = STDiT_XL_2(input_size=latent)  # caption_channels 4096, 120 tokens (T5-XXL)
        # zero-initialised layers would make cached and uncached runs agree trivially
        randomise_zero_layers(transformer, std=0.02)
    pipe = KinemaVideoPipeline(transformer=transformer.eval().to(dtype),
                               scheduler=lookup("scheduler", "iddpm")().sampler(), prediction_type="epsilon")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, latents, caption, steps: int, device: str) -> tuple[torch.Tensor, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = pipe(prompt_embeds=caption, latents=latents, output_type="latent", num_inference_steps=steps,
               guidance_scale=7.0, generator=torch.Generator().manual_seed(0)).frames
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out.float().cpu(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="TxHxW", help="latent sizes")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cache", choices=("off", "on", "both"), default="both", help="attention step caching")
    parser.add_argument("--cache-spec", default="default",
                        help='the cache setting, as for --attention-cache ("spatial=2,temporal=3,cross=5,...")')
    parser.add_argument("--compile", choices=("off", "on", "both"), default="both",
                        help="pipe.compile_transformer()")
    parser.add_argument("--smoke", action="store_true", help="toy STDiT on the CPU in fp32, 4 steps")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()

    from kinema.sample.attention_cache import AttentionCacheConfig

    torch.set_grad_enabled(False)
    if not args.smoke and not torch.cuda.is_available():  # `nox -s benchmarks` on a CPU machine: the smoke sizes
        print("no CUDA device: running the CPU smoke sizes")
        args.smoke = True
    if args.smoke:
        device, dtype, sizes, steps = "cpu", torch.float32, ["4x8x8"], min(args.steps, 4)
        args.compile = "off" if args.compile == "both" else args.compile
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --smoke for the CPU check")
        device, dtype, sizes, steps = "cuda", torch.bfloat16, args.sizes, args.steps
    config = AttentionCacheConfig.parse(args.cache_spec)
    caches = {"off": [False], "on": [True], "both": [False, True]}[args.cache]
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]

    rows = []
    print(f"{'latent':<10}{'compile':>8}{'cache':>7}{'s/step':>9}{'s/video':>9}{'attn FLOPs skip':>17}"
          f"{'max|diff|':>11}")
    for size in sizes:
        latent = tuple(int(n) for n in size.lower().split("x"))
        pipe = build_pipeline(latent, args.smoke, device, dtype)
        contract = pipe.transformer.contract()
        gen = torch.Generator().manual_seed(0)
        latents = torch.randn(1, contract.latent_channels, *latent, generator=gen).to(device)
        caption = torch.randn(1, contract.caption_length, contract.caption_channels, generator=gen).to(device)
        for compiled in compiles:
            if compiled:
                if not hasattr(pipe, "compile_transformer"):
                    raise SystemExit("compile not available: this KinemaVideoPipeline has no compile_transformer()")
                pipe.compile_transformer()
            reference = None
            for cached in caches:
                pipe.disable_attention_cache()
                cache = pipe.enable_attention_cache(config) if cached else None
                sample(pipe, latents, caption, 2, device)  # warm-up (and compilation)
                if cache is not None:
                    cache.stats = type(cache.stats)()
                out, seconds = sample(pipe, latents, caption, steps, device)
                diff = float("nan") if reference is None else (out - reference).abs().max().item()
                reference = out if not cached else reference
                skip = cache.stats.skipped_fraction() if cache else 0.0
                row = {"latent": size, "compile": compiled, "cache": cached, "steps": steps,
                       "s_per_step": seconds / steps, "s_per_video": seconds, "attn_flops_skipped": skip,
                       "max_abs_diff": diff, "finite": bool(torch.isfinite(out).all())}
                rows.append(row)
                print(f"{size:<10}{'on' if compiled else 'off':>8}{'on' if cached else 'off':>7}"
                      f"{seconds / steps:>9.4f}{seconds:>9.2f}{skip:>17.1%}{diff:>11.3g}", flush=True)
                if not row["finite"]:
                    raise SystemExit(f"non-finite latents at {size} (compile {compiled}, cache {cached})")
        pipe.disable_attention_cache()
        del pipe
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
