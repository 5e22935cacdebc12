"""Will a sampling request fit in memory? An estimate from the model's configs, checked before generating.

No library predicts a diffusion pipeline's peak memory from its configs, so this is a rough formula that errs
on the high side (a refusal names the estimate and the limit): the larger of the transformer's
activations for one denoising step and the VAE decoder's activations at full resolution, plus the latents and
the decoded video. The constants were measured on the built-in default model on CPU (peak RSS growth).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kinema.core import KinemaError

FLOAT_BYTES = 4
# tensors of the transformer's width alive at once in a block (qkv, attention output, MLP at 4x, residuals)
TRANSFORMER_ACTIVATIONS = 12
# tensors of the decoder's full-resolution width alive at once (conv input/output, norm, residual, upsample)
VAE_ACTIVATIONS = 6
# on the CPU a 3x3x3 convolution unfolds its input into 27 shifted copies first (measured: ~1 KB per output
# pixel for the default model's 8-channel decoder); GPU convolutions do not
CPU_CONV_UNFOLD = 27
# the decoded video as float [-1, 1], the clamped/scaled copy, and the uint8 frames
OUTPUT_COPIES = 3
# a VAE whose config names no channel widths (the full-resolution decoder width of SD-style VAEs)
FALLBACK_DECODER_CHANNELS = 128
FIX = "use a smaller size (--resolution), fewer frames (--num-frames), --vae-tiling or --cpu-offload"


@dataclass(frozen=True)
class Estimate:
    transformer: int
    vae: int
    latents: int
    output: int

    @property
    def total(self) -> int:
        return max(self.transformer, self.vae) + self.latents + self.output


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _decoder_channels(vae) -> int:
    config = getattr(vae, "config", None)
    channels = getattr(config, "block_out_channels", None)
    if channels:
        return int(channels[0])
    hidden, mult = getattr(config, "hidden_size", None), getattr(config, "hidden_size_mult", None)
    if hidden and mult:
        return int(hidden) * int(mult[0])
    inner = getattr(config, "autoencoder_kl", None)  # a framewise SD VAE keeps the 2D VAE's config inside
    if isinstance(inner, dict) and inner.get("block_out_channels"):
        return int(inner["block_out_channels"][0])
    return FALLBACK_DECODER_CHANNELS


def estimate(pipe, batch: int, num_frames: int, height: int, width: int, guidance: bool, vae_tiling: bool = False,
             loop: int = 1, device="cpu") -> Estimate:
    """Bytes one call of ``pipe`` needs beyond its weights (see the module docstring for what is counted)."""
    vae, transformer = pipe.vae, pipe.transformer
    t, h, w = vae.latent_size((num_frames, height, width))
    channels = vae.latent_channels
    latents = batch * channels * t * h * w * FLOAT_BYTES * 4  # noise, the latents, the prediction, a step
    config = transformer.config
    patch = getattr(config, "patch_size", None) or (1, 2, 2)
    patch = (1, patch, patch) if isinstance(patch, int) else tuple(patch)
    if len(patch) == 2:
        patch = (1, *patch)
    tokens = max(1, t // patch[0]) * max(1, h // patch[1]) * max(1, w // patch[2])
    hidden = int(getattr(config, "hidden_size", 0) or 1152)
    rows = batch * (2 if guidance else 1)
    transformer_bytes = rows * tokens * hidden * FLOAT_BYTES * TRANSFORMER_ACTIVATIONS
    # the decoder's widest full-resolution layer; tiling bounds it by the tile (256 px, 65 frames by default)
    dh, dw, dt = height, width, num_frames
    if vae_tiling:
        tile = int(getattr(vae, "tile_sample_min_size", 256))
        tile_t = int(getattr(vae, "tile_sample_min_size_t", 65))
        dh, dw, dt = min(dh, tile), min(dw, tile), min(dt, tile_t)
    micro = getattr(vae, "micro_batch_size", None)  # framewise VAEs decode a few frames at a time
    if micro:
        dt = min(dt, int(micro))
    import torch

    copies = VAE_ACTIVATIONS + (CPU_CONV_UNFOLD if torch.device(device).type == "cpu" else 0)
    vae_bytes = batch * _decoder_channels(vae) * dt * dh * dw * FLOAT_BYTES * copies
    frames = num_frames * loop
    output = batch * 3 * frames * height * width * FLOAT_BYTES * OUTPUT_COPIES
    return Estimate(int(transformer_bytes), int(vae_bytes), int(latents), int(output))


def available_bytes(device) -> tuple[int, str]:
    """(bytes free for new tensors, where that number comes from) on ``device``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free memory on {device}"
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available), "available RAM"
    try:  # MemAvailable counts reclaimable page cache; sysconf's free pages do not
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available RAM"
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "free RAM"


def check_fits(pipe, device, what: str, batch: int, num_frames: int, height: int, width: int, guidance: bool,
               vae_tiling: bool = False, loop: int = 1, fix: str = FIX) -> Estimate:
    """Refuse a request whose estimate exceeds the memory free on ``device`` (one line: estimate, limit, fix)."""
    need = estimate(pipe, batch, num_frames, height, width, guidance, vae_tiling, loop, device)
    free, source = available_bytes(device)
    if need.total > free:
        raise KinemaError(f"{what} ({batch} x {num_frames} frames at {height}x{width}) needs about {gib(need.total)} "
                          f"(estimate) but {source} is {gib(free)}; {fix}")
    return need
