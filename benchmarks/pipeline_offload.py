"""Pipeline on a GPU: peak memory and time for plain, model-offloaded and sequentially offloaded sampling, the
agreement of their outputs, half precision, and diffusers' attention-backend names.

    python benchmarks/pipeline_offload.py            # on a CUDA device (without one: the smoke sizes)
    python benchmarks/pipeline_offload.py --smoke    # tiny sizes on the CPU (offload with device="cpu")

On an H200 (12-block STDiT2, 576 wide, 16 frames of 128x128, 10 steps): model offload x1.00 peak memory (the
transformer is the largest model, so its peak stands) and x1.15 time; sequential offload x0.45 memory, x3.2 time;
both agree exactly with the plain run; bf16 differs from fp32 by 2.4% of the latents' mean magnitude, fp16 0.4%.

Prints one row per mode (seconds, peak GPU memory, max |difference| from the plain run) and the ratios, and fails
if an offloaded run disagrees with the plain one or a half-precision run is not finite.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def build_pipeline(smoke: bool):
    from kinema.dit.stdit2 import STDiT2
    from kinema.sample import KinemaVideoPipeline
    from kinema.sample.schedulers import RectifiedFlowScheduler
    from kinema.sample.testing import randomise_zero_layers, tiny_vae
    from kinema.sample.text_encoders import tiny_t5_parts

    torch.manual_seed(0)
    size = dict(hidden_size=48, depth=2, num_heads=4) if smoke else dict(hidden_size=576, depth=12, num_heads=8)
    transformer = STDiT2(input_sq_size=32, caption_channels=32, model_max_length=16, qk_norm=True, **size).eval()
    randomise_zero_layers(transformer, std=0.02)  # zero-initialised layers would make every mode agree trivially
    text_encoder, tokenizer = tiny_t5_parts(hidden_size=32)
    pipe = KinemaVideoPipeline(transformer=transformer, vae=tiny_vae(), text_encoder=text_encoder,
                               tokenizer=tokenizer, scheduler=RectifiedFlowScheduler(shift=3.0).sampler(),
                               prediction_type="flow")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, device: str, call: dict) -> tuple[torch.Tensor, float, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = pipe("a red circle", generator=torch.Generator().manual_seed(0), output_type="latent",
               **call).frames.float().cpu()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return out, time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: running the CPU smoke sizes (offload to device='cpu'; no memory figures)")
        args.smoke = True
    device = "cpu" if args.smoke else "cuda"
    call = dict(num_frames=4, height=32, width=32, num_inference_steps=3) if args.smoke else \
        dict(num_frames=16, height=128, width=128, num_inference_steps=10)
    results, failures = {}, []

    pipe = build_pipeline(args.smoke).to(device)
    run(pipe, device, call)  # warm-up
    plain, seconds, peak = run(pipe, device, call)
    noise = torch.randn(plain.shape, generator=torch.Generator().manual_seed(0))
    if torch.allclose(plain, noise):
        failures.append("the model changed nothing: the comparisons below would be vacuous")
    results["plain"] = {"seconds": seconds, "peak_mib": peak, "max_abs_diff": 0.0}

    pipe.to("cpu")
    offload_device = None if not args.smoke else "cpu"  # no device: the pipeline picks cuda:0
    for mode, enable in (("model_offload", pipe.enable_model_cpu_offload),
                         ("sequential_offload", pipe.enable_sequential_cpu_offload)):
        enable(device=offload_device)
        out, seconds, peak = run(pipe, device, call)
        weights_home = next(pipe.transformer.parameters()).device.type
        diff = (out - plain).abs().max().item()
        results[mode] = {"seconds": seconds, "peak_mib": peak, "max_abs_diff": diff, "weights_after": weights_home}
        if diff > 1e-4 or weights_home != "cpu":
            failures.append(f"{mode}: max |diff| {diff:.2e}, weights on {weights_home} after the call")
        pipe.disable_cpu_offload()

    pipe.to(device)
    for dtype in (torch.bfloat16, torch.float16) if not args.smoke else ():
        pipe.to(dtype=dtype)
        out, seconds, peak = run(pipe, device, call)
        rel = ((out - plain).abs().mean() / plain.abs().mean()).item()
        results[str(dtype).split(".")[1]] = {"seconds": seconds, "peak_mib": peak, "mean_rel_diff": rel,
                                             "dtype_reported": str(pipe.dtype)}
        if not torch.isfinite(out).all() or pipe.dtype != dtype:
            failures.append(f"{dtype}: not finite or pipe.dtype is {pipe.dtype}")
    if not args.smoke:
        pipe.to(dtype=torch.bfloat16)
        for name in ("native", "flash", "_native_math"):
            try:
                pipe.transformer.set_attention_backend(name)
                out, seconds, _ = run(pipe, device, call)
                results[f"attention {name}"] = {"backend": pipe.transformer.config.attention, "seconds": seconds,
                                                "finite": bool(torch.isfinite(out).all())}
            except Exception as exc:  # a backend that cannot run here must say so in one line
                results[f"attention {name}"] = {"error": f"{type(exc).__name__}: {exc}"}
        pipe.transformer.set_attention_backend("native")

    print(f"{'mode':<22}{'seconds':>10}{'peak MiB':>12}  agreement")
    for mode, r in results.items():
        agreement = r.get("max_abs_diff", r.get("mean_rel_diff", r.get("backend", r.get("error", ""))))
        print(f"{mode:<22}{r.get('seconds', float('nan')):>10.3f}{r.get('peak_mib', float('nan')):>12.1f}  {agreement}")
    if not args.smoke:
        base = results["plain"]
        for mode in ("model_offload", "sequential_offload"):
            r = results[mode]
            print(f"{mode}: peak memory x{r['peak_mib'] / base['peak_mib']:.2f}, "
                  f"time x{r['seconds'] / base['seconds']:.2f} of plain")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", **results}, f, indent=2)
    if failures:
        raise SystemExit("FAILED: " + "; ".join(failures))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
