"""Training throughput of a small STDiT2 on CPU: samples/s, tokens/s and model-FLOPs utilisation (MFU)
for 1 process and 2 data-parallel processes (torchrun, gloo), against this machine's measured fp32 matmul peak.

    python benchmarks/train_throughput.py [--steps 8]

Model FLOPs per sample ~= 6 * (parameters in the blocks' matmuls) * tokens + 12 * depth * hidden * (S*T*S + S*T*T)
(forward + backward, spatial and temporal attention scores); MFU = achieved / (peak per process * processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

CONFIG = [
    "model.name=STDiT2-S/2",
    "model.kwargs={hidden_size: 192, depth: 4, num_heads: 6, in_channels: 3, caption_channels: 32, "
    "model_max_length: 16, input_sq_size: 32}",
    "text_encoder.name=tiny-t5", "text_encoder.kwargs={max_length: 16, hidden_size: 32}",
    "data.num_samples=32", "data.num_frames=8", "data.image_size=[32,32]", "data.batch_size=4",
    "optim.ema_decay=0.99", "checkpoint.every=100000", "logging.progress=false", "logging.csv=false",
]


def matmul_peak(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def worker(steps: int, out: str) -> None:
    from kinema.train.config import load_config
    from kinema.train.trainer import Trainer

    ckpt_dir = os.path.join(os.path.dirname(out), f"ckpt-{os.environ.get('WORLD_SIZE', '1')}")  # shared by ranks
    trainer = Trainer(load_config(None, CONFIG + [f"checkpoint.dir={ckpt_dir}"]))
    trainer.train(max_steps=2)  # warm-up
    start = time.perf_counter()
    trainer.train(max_steps=2 + steps)
    elapsed = time.perf_counter() - start
    model = trainer.model
    matmul_params = sum(p.numel() for n, p in model.blocks.named_parameters() if p.dim() == 2)
    c = model.config
    T, S = 8, (32 // 2) ** 2
    tokens = T * S
    attn = 12 * c.depth * c.hidden_size * (T * S * S + S * T * T)
    flops_per_sample = 6 * matmul_params * tokens + attn
    if trainer.ctx.is_main:
        samples = steps * trainer.cfg.data.batch_size
        with open(out, "w") as f:
            json.dump({"samples_per_s": samples / elapsed, "tokens_per_s": samples * tokens / elapsed,
                       "flops_per_s": samples * flops_per_sample / elapsed, "world": trainer.ctx.world_size}, f)
    trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        return worker(args.steps, args.worker)

    torch.set_num_threads(1)
    peak1 = matmul_peak()
    print(f"fp32 matmul peak (1 thread, 1024^2, best of 10): {peak1 / 1e9:.1f} GFLOP/s")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for procs in (1, 2):
            out = os.path.join(tmp, f"{procs}.json")
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                   __file__, "--steps", str(args.steps), "--worker", out]
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True)
            with open(out) as f:
                results[procs] = json.load(f)
    for procs, r in results.items():
        mfu = r["flops_per_s"] / (peak1 * procs)
        print(f"{procs} process(es): {r['samples_per_s']:.2f} samples/s, {r['tokens_per_s']:.0f} tokens/s, "
              f"{r['flops_per_s'] / 1e9:.1f} model GFLOP/s, MFU {100 * mfu:.1f}% of {procs} x measured peak")
    print(f"2-process / 1-process samples/s: {results[2]['samples_per_s'] / results[1]['samples_per_s']:.2f}x")


if __name__ == "__main__":
    main()
