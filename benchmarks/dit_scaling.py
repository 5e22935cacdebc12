"""STDiT (spatial + temporal attention) vs DiT (full 3D attention): training-step throughput and peak memory
as the number of frames grows.

Both models are the kinema classes at a CPU-sized config (fp32, 2 threads): hidden 192, 3 heads of 64, depth 2,
32x32 latents with 2x2 patches (256 tokens per frame), 16 caption tokens, batch 1. One step is forward +
MSE loss + backward. Each (model, frames) point runs in a fresh Python process, so that

- time: the fastest of the timed steps after one warm-up step; wall clock with 2 threads by default (the
  minimum, because other load only ever adds time), or with `--clock cpu` the CPU time of a single thread
  (torch.set_num_threads(1); time.thread_time), which other processes sharing the cores do not inflate;
- peak memory: the process's peak resident set size (getrusage ru_maxrss) minus its resident size just
  before the first step (model, optimizer-free, and inputs already built): the growth caused by the
  forward/backward activations and temporaries, as the OS sees it (includes allocator caching).

    python benchmarks/dit_scaling.py            # frames 4 8 16 32, ~2-4 minutes on 2 cores
    python benchmarks/dit_scaling.py --quick    # smoke run: tiny grid, frames 2 4, one timed step
    python benchmarks/dit_scaling.py --clock cpu --frames 32   # compute cost on a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_point(model_name: str, frames: int, size: int, steps: int, hidden: int, depth: int, heads: int,
              clock: str) -> dict:
    """One (model, frames) measurement; runs inside its own process."""
    import warnings

    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(1 if clock == "cpu" else 2)
    timer = time.thread_time if clock == "cpu" else time.perf_counter  # CPU autograd runs on this thread
    torch.manual_seed(0)
    from kinema.dit.dit import DiT
    from kinema.dit.stdit import STDiT

    cls = {"STDiT": STDiT, "DiT": DiT}[model_name]
    model = cls(input_size=(frames, size, size), hidden_size=hidden, depth=depth, num_heads=heads,
                caption_channels=64, model_max_length=16, class_dropout_prob=0.0).train()
    batch = 1
    x = torch.randn(batch, 4, frames, size, size)
    t = torch.randint(0, 1000, (batch,))
    y = torch.randn(batch, 1, 16, 64)
    mask = torch.ones(batch, 16, dtype=torch.long)
    target = torch.randn(batch, 8, frames, size, size)

    def step():
        model.zero_grad(set_to_none=True)
        loss = (model(x, t, y, mask) - target).square().mean()
        loss.backward()

    before = rss_bytes()
    times = []
    for i in range(steps + 1):
        start = timer()
        step()
        if i > 0:  # the first step is a warm-up
            times.append(timer() - start)
    tokens = batch * frames * (size // 2) ** 2
    seconds = min(times)
    return {"model": model_name, "frames": frames, "tokens": tokens, "step_s": seconds,
            "tokens_per_s": tokens / seconds, "peak_mb": max(0, peak_rss_bytes() - before) / 2**20}


def measure(model_name: str, frames: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", model_name, str(frames), "--size", str(args.size),
           "--steps", str(args.steps), "--hidden", str(args.hidden), "--depth", str(args.depth),
           "--heads", str(args.heads), "--clock", args.clock]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{model_name} with {frames} frames failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 16x16 latents, frames 2 4, 1 step")
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--size", type=int, default=32, help="latent height = width (2x2 patches)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per point (after one warm-up)")
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: wall clock, 2 threads; cpu: CPU time of 1 thread (robust to other load)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = run_point(args.child[0], int(args.child[1]), args.size, args.steps, args.hidden, args.depth,
                           args.heads, args.clock)
        print(json.dumps(result))
        return
    if args.quick:
        args.frames, args.size, args.steps = [2, 4], 16, 1

    threads = "1 thread, thread CPU time" if args.clock == "cpu" else "2 threads, wall clock"
    print(f"CPU fp32, {threads}, batch 1, hidden {args.hidden}, depth {args.depth}, {args.heads} heads, "
          f"{args.size}x{args.size} latents -> {(args.size // 2) ** 2} tokens/frame; forward+backward; "
          f"fastest of {args.steps} step(s) after a warm-up; peak = ru_maxrss growth over pre-step RSS")
    print(f"{'model':<6} {'frames':>6} {'tokens':>7} {'step ms':>9} {'tokens/s':>10} {'peak MB':>9}")
    results = {}
    for frames in args.frames:
        for name in ("STDiT", "DiT"):
            r = measure(name, frames, args)
            results[name, frames] = r
            print(f"{name:<6} {frames:>6} {r['tokens']:>7} {r['step_s'] * 1e3:>9.1f} {r['tokens_per_s']:>10.0f} "
                  f"{r['peak_mb']:>9.1f}", flush=True)
    print("\nSTDiT / DiT per frame count (throughput >1: STDiT faster; memory <1: STDiT smaller)")
    print(f"{'frames':>6} {'throughput':>11} {'peak memory':>12}")
    for frames in args.frames:
        s, d = results["STDiT", frames], results["DiT", frames]
        memory = s["peak_mb"] / d["peak_mb"] if d["peak_mb"] > 0 else float("nan")
        print(f"{frames:>6} {s['tokens_per_s'] / d['tokens_per_s']:>11.2f} {memory:>12.2f}")


if __name__ == "__main__":
    main()
