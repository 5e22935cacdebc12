"""Attention step caching on the built-in default model: prompt adherence, FLOPs skipped and time per video.

    python benchmarks/sample_cache.py                   # -n 100 --seed 0, the settings below (minutes on a CPU)
    python benchmarks/sample_cache.py -n 20 --device cuda
    python benchmarks/sample_cache.py --smoke           # tiny random pipeline, seconds (numbers mean nothing)

For each setting it runs ``kinema eval adherence``'s evaluation and prints one row: accuracy (colour, shape,
direction, all three), the share of attention calls and attention FLOPs skipped, the transformer's FLOPs per
video relative to no caching (a transformer call's FLOPs counted once by torch's FlopCounterMode, less the
skipped attention), and seconds per video.
"""

from __future__ import annotations

import argparse
import time

import torch

SETTINGS = {
    "off": None,
    "default": "default",  # spatial 3, temporal 3, cross 6 over steps 5%..95%
    "conservative": "spatial=2,temporal=3,cross=5,start=0.1,end=0.9",
    "wide": "spatial=3,temporal=4,cross=6,start=0.05,end=0.95",
}


def transformer_call_flops(pipe, prompt: str) -> int:
    """FLOPs of one uncached transformer call as the loop makes it: torch's FlopCounterMode for everything but
    the attention modules, the cache's own count for those (FlopCounterMode misses CPU attention kernels)."""
    from torch.utils.flop_counter import FlopCounterMode

    captured = {}

    def grab(_, args, kwargs):
        captured.setdefault("call", (args, kwargs))

    handle = pipe.transformer.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        pipe(prompt, num_inference_steps=1, output_type="latent", generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    args, kwargs = captured["call"]
    cache = pipe.enable_attention_cache(spatial=1, temporal=1, cross=1)  # counts, never reuses
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            pipe.transformer(*args, **kwargs)
    finally:
        pipe.disable_attention_cache()
    attention = {id(m) for _, m in cache.modules}
    prefix = type(pipe.transformer).__name__
    names = {f"{prefix}.{n}" for n, m in pipe.transformer.named_modules() if id(m) in attention}
    counts = counter.get_flop_counts()
    counted = sum(sum(counts[n].values()) for n in names if n in counts)
    return counter.get_total_flops() - counted + sum(c for c, _ in cache.stats.flops.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="prompts per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), help="run only these settings")
    parser.add_argument("--smoke", action="store_true", help="tiny random pipeline, 2 prompts, 4 steps")
    args = parser.parse_args()

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    from kinema.sample.adherence import evaluate, make_prompts, summarise
    from kinema.sample.attention_cache import AttentionCacheConfig

    hf_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    torch.set_grad_enabled(False)
    if args.smoke:
        from kinema.sample.testing import make_tiny_pipeline

        pipe, n, steps, batch_size = make_tiny_pipeline(scheduler="rflow"), 2, 4, 2
    else:
        from kinema.sample.cli import load_pipeline

        pipe, _ = load_pipeline(None, args.device)
        n, steps, batch_size = args.n, None, args.batch_size
    pipe.set_progress_bar_config(disable=True)
    cases = make_prompts(n, args.seed)
    num_steps = steps or pipe.defaults["num_inference_steps"]
    call_flops = transformer_call_flops(pipe, cases[0].prompt)

    header = (f"{'setting':<10}{'colour':>8}{'shape':>8}{'direction':>10}{'all':>7}{'calls skip':>12}"
              f"{'attn FLOPs skip':>17}{'transformer FLOPs':>19}{'s/video':>9}")
    print(f"{n} prompts, seed {args.seed}, {num_steps} steps, device {args.device}; "
          f"one transformer call (CFG batch of 2): {call_flops / 1e9:.2f} GFLOP")
    print(header)
    print("-" * len(header))
    for name in args.only or list(SETTINGS):
        spec = SETTINGS[name]
        pipe.disable_attention_cache()
        cache = pipe.enable_attention_cache(AttentionCacheConfig.parse(spec)) if spec else None
        start = time.perf_counter()
        rows = evaluate(pipe, cases, args.seed, batch_size, num_inference_steps=steps)
        seconds = (time.perf_counter() - start) / n
        s = summarise(rows)["all"]
        calls_skip = cache.stats.skipped_fraction("calls") if cache else 0.0
        flops_skip = cache.stats.skipped_fraction("flops") if cache else 0.0
        # per video: every step one call on the CFG batch; the cache's counts cover all n videos
        skipped = sum(s for _, s in cache.stats.flops.values()) / n if cache else 0
        full = call_flops * num_steps
        ratio = full / (full - skipped)
        print(f"{name:<10}{s['colour']:>8.0%}{s['shape']:>8.0%}{s['direction']:>10.0%}{s['all']:>7.0%}"
              f"{calls_skip:>12.1%}{flops_skip:>17.1%}{f'1/{ratio:.2f}':>19}{seconds:>9.2f}")
    pipe.disable_attention_cache()


if __name__ == "__main__":
    main()
