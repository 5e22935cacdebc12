"""2-D -> 3-D inflation: a diffusers AutoencoderKL (SD image VAE) becomes a CausalVideoVAE.

Tail initialisation (Open-Sora-Plan 1.0) puts the 2-D kernel at the last time tap and zeros
elsewhere. With causal left padding the last tap multiplies the current frame, so every
3-D conv equals the 2-D conv per frame. "center" and "average" (I3D) are offered to compare.
After inflation with attn_impl="fixed", a 1-frame input reproduces the 2-D VAE exactly.
"""

from __future__ import annotations

import re

import torch
from diffusers import AutoencoderKL

from kinema.core import KinemaError

from .causal_vae import CausalVideoVAE

INIT_METHODS = ("tail", "center", "average")


def inflate_kernel(w2d: torch.Tensor, time_taps: int, method: str = "tail") -> torch.Tensor:
    """[O,I,kh,kw] -> [O,I,time_taps,kh,kw]."""
    if method not in INIT_METHODS:
        raise KinemaError(f"unknown inflation init {method!r}; use one of {', '.join(INIT_METHODS)}")
    w3d = w2d.new_zeros(w2d.shape[0], w2d.shape[1], time_taps, *w2d.shape[2:])
    if method == "tail":
        w3d[:, :, -1] = w2d
    elif method == "center":
        w3d[:, :, time_taps // 2] = w2d
    else:
        w3d[:] = (w2d / time_taps).unsqueeze(2)
    return w3d


def causal_config_for(vae2d: AutoencoderKL, attn_impl: str = "fixed", num_time_downsamples: int | None = None) -> dict:
    """CausalVideoVAE config with the 2-D VAE's channels; time is down/upsampled like the release
    (encoder: the highest-resolution levels; decoder: the lowest-resolution levels)."""
    cfg = vae2d.config
    channels = list(cfg.block_out_channels)
    levels, ch = len(channels), channels[0]
    if any(c % ch for c in channels):
        raise KinemaError(f"block_out_channels {channels} are not multiples of the first, so they cannot be "
                       "expressed as hidden_size_mult")
    if any(t != "DownEncoderBlock2D" for t in cfg.down_block_types) or any(
        t != "UpDecoderBlock2D" for t in cfg.up_block_types
    ):
        raise KinemaError("only AutoencoderKL with DownEncoderBlock2D/UpDecoderBlock2D blocks can be inflated")
    if not getattr(cfg, "mid_block_add_attention", True):
        raise KinemaError("the 2-D VAE has no mid-block attention; the causal video VAE always has one")
    n_time = min(2, levels - 1) if num_time_downsamples is None else num_time_downsamples
    return {
        "hidden_size": ch,
        "hidden_size_mult": [c // ch for c in channels],
        "num_res_blocks": cfg.layers_per_block,
        "z_channels": cfg.latent_channels,
        "embed_dim": cfg.latent_channels,
        "double_z": True,
        "attn_resolutions": [],
        "resolution": cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0],
        "norm_num_groups": cfg.norm_num_groups,
        "encoder_resnet_blocks": ["ResnetBlock3D"] * levels,
        "decoder_resnet_blocks": ["ResnetBlock3D"] * levels,
        "encoder_spatial_downsample": ["SpatialDownsample2x"] * (levels - 1) + [""],
        "encoder_temporal_downsample": ["TimeDownsample2x"] * n_time + [""] * (levels - n_time),
        "decoder_spatial_upsample": [""] + ["SpatialUpsample2x"] * (levels - 1),
        "decoder_temporal_upsample": [""] * (levels - n_time) + ["TimeUpsample2x"] * n_time,
        "encoder_attention": "AttnBlock3DFix" if attn_impl == "fixed" else "AttnBlock3D",
        "decoder_attention": "AttnBlock3DFix" if attn_impl == "fixed" else "AttnBlock3D",
        "attn_impl": attn_impl,
        "scaling_factor": cfg.scaling_factor,
    }


def _causal_name(key: str, levels: int) -> str:
    """diffusers AutoencoderKL key -> CausalVideoVAE (LDM + `.conv`) key."""
    k = key
    k = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", k)
    k = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.", r"down.\1.downsample.conv.conv.", k)
    k = re.sub(r"up_blocks\.(\d+)\.", lambda m: f"up.{levels - 1 - int(m.group(1))}.", k)  # LDM stores up[0]=full res
    k = re.sub(r"(up\.\d+)\.resnets\.", r"\1.block.", k)
    k = re.sub(r"(up\.\d+)\.upsamplers\.0\.conv\.", r"\1.upsample.conv.conv.", k)
    k = k.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    k = k.replace("mid_block.attentions.0.group_norm.", "mid.attn_1.norm.")
    for src, dst in (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
        k = k.replace(f"mid_block.attentions.0.{src}.", f"mid.attn_1.{dst}.conv.")
    k = k.replace("conv_norm_out.", "norm_out.").replace("conv_shortcut.", "nin_shortcut.conv.")
    k = re.sub(r"\b(conv_in|conv_out|conv1|conv2|quant_conv|post_quant_conv)\.(weight|bias)$", r"\1.conv.\2", k)
    return k


def inflate_state_dict(sd2d: dict, target: dict, method: str = "tail") -> dict:
    """Map and reshape a diffusers AutoencoderKL state dict onto a CausalVideoVAE state dict."""
    levels = 1 + max(int(m.group(1)) for k in sd2d if (m := re.search(r"down_blocks\.(\d+)\.", k)))
    out = {}
    for key, w in sd2d.items():
        name = _causal_name(key, levels)
        if name not in target:
            raise KinemaError(f"2-D weight {key!r} maps to {name!r}, which the video VAE does not have")
        shape = target[name].shape
        if w.ndim == 4 and len(shape) == 5:
            w = inflate_kernel(w, shape[2], method) if shape[2] > 1 else w.unsqueeze(2)
        elif w.ndim == 2 and len(shape) == 5:  # attention projections are Linear in diffusers
            w = w.view(*w.shape, 1, 1, 1)
        if tuple(w.shape) != tuple(shape):
            raise KinemaError(f"shape mismatch for {name!r}: 2-D gives {tuple(w.shape)}, video VAE has {tuple(shape)}")
        out[name] = w
    missing = sorted(set(target) - set(out))
    if missing:
        raise KinemaError(f"inflation left {len(missing)} video-VAE weights unset, e.g. {missing[:3]}")
    return out


def inflate_autoencoder_kl(vae2d: AutoencoderKL, init: str = "tail", attn_impl: str = "fixed",
                           num_time_downsamples: int | None = None) -> CausalVideoVAE:
    """A CausalVideoVAE whose weights come from the 2-D VAE (see module docstring)."""
    vae3d = CausalVideoVAE.from_config(causal_config_for(vae2d, attn_impl, num_time_downsamples))
    sd = inflate_state_dict(vae2d.state_dict(), vae3d.state_dict(), init)
    vae3d.load_state_dict(sd, strict=True)
    return vae3d
