"""Peak memory of CausalVideoVAE encode+decode versus clip length, with and without tiling.

Each case runs in a fresh subprocess. On CUDA the figure is torch.cuda.max_memory_allocated; on CPU it
is the process's peak resident memory (ru_maxrss) minus its value just before encode+decode (model
built, input allocated), with glibc told to serve large blocks by mmap so freed memory leaves the
process at once (MALLOC_MMAP_THRESHOLD_). Tiling here: 32 px spatial tiles (overlap 0.25) and
17-frame temporal windows, on 64x64 clips, so tiling happens in space and in time.

    python benchmarks/vae_memory.py [--frames 17 33 65 129] [--hidden 32] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def run_case(frames: int, tiling: bool, hidden: int, size: int) -> dict:
    import resource

    import torch

    from kinema.vae import CausalVideoVAE, tiny_config

    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    vae = CausalVideoVAE.from_config(tiny_config(hidden_size=hidden, norm_num_groups=8, levels=4)).to(device).eval()
    if tiling:
        vae.enable_tiling(tile_sample_min_size=32, tile_sample_min_size_t=17)
    x = torch.rand(1, 3, frames, size, size, device=device) * 2 - 1
    with torch.no_grad():
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        z = vae.encode(x).latent_dist.mode()
        out = vae.decode(z).sample
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    assert out.shape == x.shape, (out.shape, x.shape)
    method = "torch.cuda.max_memory_allocated" if cuda else "ru_maxrss delta in a fresh process"
    return {"frames": frames, "tiling": tiling, "peak_mib": peak / 2**20, "latent": list(z.shape), "method": method}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[17, 33, 65, 129])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        frames, tiling = args.case.split(",")
        print(json.dumps(run_case(int(frames), tiling == "1", args.hidden, args.size)))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    results = []
    for tiling in (False, True):
        for frames in args.frames:
            cmd = [sys.executable, __file__, "--case", f"{frames},{int(tiling)}", "--hidden", str(args.hidden),
                   "--size", str(args.size)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"tiling={'on ' if tiling else 'off'} frames={frames:4d} latent={r['latent']}  "
                  f"peak={r['peak_mib']:8.1f} MiB", flush=True)
    print(f"memory measured as: {results[0]['method']}; model: 4 levels, hidden {args.hidden}, "
          f"clips {args.size}x{args.size}")
    for tiling in (False, True):
        rows = [r for r in results if r["tiling"] == tiling]
        ratio = rows[-1]["peak_mib"] / rows[0]["peak_mib"]
        print(f"tiling {'on ' if tiling else 'off'}: peak({rows[-1]['frames']} frames) / peak({rows[0]['frames']} "
              f"frames) = {ratio:.2f}x")


if __name__ == "__main__":
    main()
