"""GPU training throughput: video tokens/s, MFU and peak memory of one training step (forward + backward +
fused AdamW) with per-block gradient checkpointing, for STDiT-XL/2, STDiT2-XL/2 and DiT-XL/2 (the registry
flavours) at latents 16x32x32 (16 frames of 256^2), 16x64x64 (16 x 512^2) and 64x64x64, in six variants:
eager or compiled (``kinema.dit.compile.compile_blocks``: each block ``torch.compile``d) x autocast (fp32
weights, bf16 autocast), pure bf16 weights, or bf16params (FSDP2 on one GPU, as the trainer's
``parallel.data=fsdp optim.mixed_precision=bf16-params``: bf16 compute weights over fp32 master weights).

    python benchmarks/gpu_train.py --only STDiT2-XL/2,16x32x32                     # one model and shape
    python benchmarks/gpu_train.py --only 16x32x32 --variants eager-autocast,compiled-autocast --json out.json
    python benchmarks/gpu_train.py --smoke                                          # CPU, toy size, seconds

``--only`` takes MODEL, SHAPE or MODEL,SHAPE (repeatable); ``--variants`` a comma list of
{eager,compiled}-{autocast,bf16,bf16params} (``--smoke``: fp32, eager only unless named).

Tokens are the model's video tokens: batch x T x (H/2) x (W/2). Model FLOPs are counted with a formula
(``step_flops``), per video token per block, 2 FLOPs a multiply-add, C the width, N = T*S tokens per video
(S per frame), L caption tokens, r the MLP ratio:

    linear:    self-attention qkv+out 8C^2, cross-attention q+out 4C^2 and k,v 4C^2 * L/N,
               MLP 4rC^2, temporal attention qkv+out 8C^2 (STDiT, STDiT2)
    attention: scores and weighted sum 4C * (keys): spatial S (STDiT, STDiT2) or all N (DiT),
               temporal T (STDiT, STDiT2), cross L

times 3 for forward + backward; the checkpointing recompute is not counted (model FLOPs, the usual MFU
convention), nor are the embedders and final layer (under 1%). MFU = model FLOP/s / the bf16 matmul peak
measured in the same run (8192^3 matmuls, best of 20).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time

import torch

MODELS = ("STDiT-XL/2", "STDiT2-XL/2", "DiT-XL/2")
SHAPES = {"16x32x32": (16, 32, 32), "16x64x64": (16, 64, 64), "64x64x64": (64, 64, 64)}
VARIANTS = ("eager-autocast", "compiled-autocast", "eager-bf16", "compiled-bf16")
SMOKE_SHAPES = {"4x8x8": (4, 8, 8)}
SMOKE_KWARGS = dict(hidden_size=48, depth=1, num_heads=4, caption_channels=16, model_max_length=8)


def build(name: str, shape: tuple, smoke: bool):
    from kinema.core import lookup

    kwargs = dict(SMOKE_KWARGS) if smoke else {}
    if not name.startswith("STDiT2"):
        kwargs["input_size"] = shape  # fixed-size models: position tables for this latent
    return lookup("model", name)(**kwargs)


def inputs(model, name: str, shape: tuple, batch: int, device, dtype) -> dict:
    c = model.config
    T, H, W = shape
    g = torch.Generator().manual_seed(0)
    kwargs = dict(x=torch.randn(batch, c.in_channels, T, H, W, generator=g),
                  timestep=torch.randint(0, 1000, (batch,), generator=g),
                  y=torch.randn(batch, 1, c.model_max_length, c.caption_channels, generator=g),
                  mask=torch.ones(batch, c.model_max_length, dtype=torch.long))
    if name.startswith("STDiT2"):  # size conditions in pixels of an 8x VAE
        kwargs.update(num_frames=torch.full((batch,), float(T)), height=torch.full((batch,), 8.0 * H),
                      width=torch.full((batch,), 8.0 * W), ar=torch.full((batch,), H / W),
                      fps=torch.full((batch,), 24.0))
    return {k: v.to(device, dtype) if v.is_floating_point() and k in ("x", "y") else v.to(device)
            for k, v in kwargs.items()}


def video_tokens(model, shape: tuple, batch: int) -> int:
    pt, ph, pw = model.config.patch_size
    T, H, W = shape
    return batch * (T // pt) * (H // ph) * (W // pw)


def step_flops(model, name: str, shape: tuple, batch: int) -> float:
    """Model FLOPs of one forward + backward (the formula in the module docstring)."""
    c = model.config
    C, depth, L, r = c.hidden_size, c.depth, c.model_max_length, getattr(c, "mlp_ratio", 4.0)
    pt, ph, pw = c.patch_size
    T, S = shape[0] // pt, (shape[1] // ph) * (shape[2] // pw)
    N = T * S
    factorised = not name.startswith("DiT")
    linear = 8 * C**2 + 4 * C**2 + 4 * C**2 * L / N + 4 * r * C**2 + (8 * C**2 if factorised else 0)
    attention = 4 * C * ((S + T) if factorised else N) + 4 * C * L
    return 3 * depth * (linear + attention) * N * batch


def bf16_matmul_peak(n: int = 8192, repeats: int = 20) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * n**3 / min(times)


def run_case(name, shape_name, shape, variant, args, device) -> dict:
    from kinema.dit.compile import compile_blocks

    mode, precision = variant.split("-")
    row = {"model": name, "shape": shape_name, "variant": variant, "batch": args.batch}
    torch.manual_seed(0)
    model = build(name, shape, args.smoke).to(device)
    if precision == "bf16":
        model.to(torch.bfloat16)
    model.enable_gradient_checkpointing()
    model.train()
    if mode == "compiled":
        compile_blocks(model)
    if precision == "bf16params":  # what the trainer does: regional compile first, then fully_shard
        from kinema.train.distributed import ParallelContext
        from kinema.train.fsdp import apply_fsdp

        apply_fsdp(model, ParallelContext(device=device), bf16_params=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    batch = inputs(model, name, shape, args.batch, device, dtype)
    autocast = torch.autocast(device.type, torch.bfloat16) if precision == "autocast" else contextlib.nullcontext()

    def step():
        with autocast:
            out = model(**batch)
        out.float().square().mean().backward()  # a stand-in loss: the cost is the model's
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        start = time.perf_counter()
        for _ in range(args.warmup):  # compiles here
            step()
        sync()
        row["warmup_s"] = time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]  # median step
        row.update(step_s=seconds, tokens_per_s=video_tokens(model, shape, args.batch) / seconds,
                   flops_per_s=step_flops(model, name, shape, args.batch) / seconds)
        if device.type == "cuda":
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
    return row


def release(device) -> None:
    """Free the last case's model, optimizer and compiled graphs before the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()


def selected(only: list[str], name: str, shape: str) -> bool:
    if not only:
        return True
    for item in only:
        parts = set(item.split(","))
        if parts <= {name, shape}:
            return True
    return False


def print_table(rows: list[dict], peak) -> None:
    print(f"{'model':<12} {'latent':<9} {'variant':<18} {'step ms':>8} {'tokens/s':>10} {'TFLOP/s':>8} "
          f"{'MFU':>6} {'peak GiB':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<12} {r['shape']:<9} {r['variant']:<18} {r['error']}")
            continue
        mfu = f"{100 * r['flops_per_s'] / peak:5.1f}%" if peak else "-"
        mem = f"{r['peak_gib']:8.1f}" if "peak_gib" in r else f"{'-':>8}"
        print(f"{r['model']:<12} {r['shape']:<9} {r['variant']:<18} {1e3 * r['step_s']:8.1f} "
              f"{r['tokens_per_s']:10.0f} {r['flops_per_s'] / 1e12:8.2f} {mfu:>6} {mem}")
    ratios = []
    by_key = {(r["model"], r["shape"], r["variant"]): r for r in rows if "error" not in r}
    for (model, shape, variant), r in by_key.items():
        mode, precision = variant.split("-")
        if mode == "compiled" and (model, shape, f"eager-{precision}") in by_key:
            base = by_key[(model, shape, f"eager-{precision}")]
            ratios.append(f"{model} {shape} compiled/eager ({precision}): "
                          f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x")
        if precision in ("bf16", "bf16params") and (model, shape, f"{mode}-autocast") in by_key:
            base = by_key[(model, shape, f"{mode}-autocast")]
            ratios.append(f"{model} {shape} {precision} weights/autocast ({mode}): "
                          f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x")
    if ratios:
        print("tokens/s ratios:")
        for line in ratios:
            print("  " + line)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[], help="MODEL, SHAPE or MODEL,SHAPE (repeatable)")
    parser.add_argument("--variants", default=None, help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens here)")
    parser.add_argument("--json", default=None, help="also save the figures to this file")
    parser.add_argument("--smoke", action="store_true", help="CPU, toy models, fp32, no MFU: a check that it runs")
    args = parser.parse_args(argv)

    if not args.smoke and not torch.cuda.is_available():  # `nox -s benchmarks` on a CPU machine: the smoke sizes
        print("no CUDA device: running the CPU smoke sizes (no MFU)")
        args.smoke = True
    if args.smoke:
        device, shapes = torch.device("cpu"), SMOKE_SHAPES
        variants = args.variants.split(",") if args.variants else ["eager-fp32"]
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_train.py needs a CUDA GPU; use --smoke on a CPU")
        device, shapes = torch.device("cuda"), SHAPES
        variants = args.variants.split(",") if args.variants else list(VARIANTS)
    known = {f"{m}-{p}" for m in ("eager", "compiled") for p in ("autocast", "bf16", "bf16params", "fp32")}
    unknown = [v for v in variants if v not in known]
    if unknown:
        sys.exit(f"unknown --variants {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    cases = [(m, s) for m in MODELS for s in shapes if selected(args.only, m, s)]
    if not cases:
        sys.exit(f"--only {args.only} matches nothing; models {', '.join(MODELS)}, shapes {', '.join(shapes)}")

    peak = None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        peak = bf16_matmul_peak()
        print(f"{torch.cuda.get_device_name()}: bf16 matmul peak (8192^3, best of 20) {peak / 1e12:.0f} TFLOP/s")
    print(f"forward + backward + fused AdamW, gradient checkpointing, batch {args.batch}, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    rows = []
    for name, shape_name in cases:
        for variant in variants:
            r = run_case(name, shape_name, shapes[shape_name], variant, args, device)
            release(device)
            rows.append(r)
            done = r["error"] if "error" in r else f"{r['tokens_per_s']:.0f} tokens/s, warm-up {r['warmup_s']:.1f} s"
            print(f"  done {name} {shape_name} {variant}: {done}", flush=True)
            if args.json:  # after every case, so a run cut short keeps what it measured
                with open(args.json, "w") as f:
                    json.dump({"device": torch.cuda.get_device_name() if peak else "cpu", "peak_flops": peak,
                               "torch": torch.__version__, "rows": rows}, f, indent=1)
    print_table(rows, peak)


if __name__ == "__main__":
    main()
