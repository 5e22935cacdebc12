"""CausalVideoVAE: the causal 3-D VAE of Open-Sora-Plan 1.0 (upstream class `CausalVAEModel`).

Read top to bottom: Encoder, Decoder, then the model (encode/decode, tiling, slicing).
Built from the fields of the release config (`release_config()`), where module classes are
given by name. Video [B,3,T,H,W] in [-1,1] with T = 1+4k -> latent [B,4,1+k,H/8,W/8].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from kinema.core import KinemaError

from .distribution import DiagonalGaussianDistribution
from .interface import VideoVAEMixin
from .modules import ATTN_IMPLS, AttnBlock3D, Normalize, resolve_module
from .norm_stats import run_with_shared_stats
from .tiling import tiled_2d, tiled_time


def _attention(name: str, field: str, channels: int, attn_impl: str, groups: int) -> nn.Module:
    cls = resolve_module(name, field)
    if cls is not AttnBlock3D:
        raise KinemaError(f"config field {field!r} must name AttnBlock3D or AttnBlock3DFix, got {name!r}")
    return AttnBlock3D(channels, attn_impl=attn_impl, norm_num_groups=groups)


# ----------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    def __init__(self, cfg, attn_impl: str):
        super().__init__()
        ch, mult, groups = cfg.hidden_size, tuple(cfg.hidden_size_mult), cfg.norm_num_groups
        conv = resolve_module(cfg.encoder_conv_in, "encoder_conv_in")
        self.conv_in = conv(3, ch, 3, padding=1)
        curr_res, in_mult = cfg.resolution, (1,) + mult
        self.down = nn.ModuleList()
        for i in range(len(mult)):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_mult[i], ch * mult[i]
            resnet = resolve_module(cfg.encoder_resnet_blocks[i], "encoder_resnet_blocks")
            for _ in range(cfg.num_res_blocks):
                level.block.append(resnet(block_in, block_out, cfg.dropout, norm_num_groups=groups))
                block_in = block_out
                if curr_res in cfg.attn_resolutions:
                    attn = _attention(cfg.encoder_attention, "encoder_attention", block_in, attn_impl, groups)
                    level.attn.append(attn)
            if cfg.encoder_spatial_downsample[i]:
                down = resolve_module(cfg.encoder_spatial_downsample[i], "encoder_spatial_downsample")
                level.downsample = down(block_in, block_in)
                curr_res //= 2
            if cfg.encoder_temporal_downsample[i]:
                tdown = resolve_module(cfg.encoder_temporal_downsample[i], "encoder_temporal_downsample")
                level.time_downsample = tdown(block_in, block_in)
            self.down.append(level)

        mid_resnet = resolve_module(cfg.encoder_mid_resnet, "encoder_mid_resnet")
        self.mid = nn.Module()
        self.mid.block_1 = mid_resnet(block_in, block_in, cfg.dropout, norm_num_groups=groups)
        self.mid.attn_1 = _attention(cfg.encoder_attention, "encoder_attention", block_in, attn_impl, groups)
        self.mid.block_2 = mid_resnet(block_in, block_in, cfg.dropout, norm_num_groups=groups)

        self.norm_out = Normalize(block_in, groups)
        out_channels = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.conv_out = resolve_module(cfg.encoder_conv_out, "encoder_conv_out")(block_in, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
            if hasattr(level, "time_downsample"):
                h = level.time_downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- decoder


class Decoder(nn.Module):
    def __init__(self, cfg, attn_impl: str):
        super().__init__()
        ch, mult, groups = cfg.hidden_size, tuple(cfg.hidden_size_mult), cfg.norm_num_groups
        block_in = ch * mult[-1]
        curr_res = cfg.resolution // 2 ** sum(bool(s) for s in cfg.encoder_spatial_downsample)
        self.conv_in = resolve_module(cfg.decoder_conv_in, "decoder_conv_in")(cfg.z_channels, block_in, 3, padding=1)

        mid_resnet = resolve_module(cfg.decoder_mid_resnet, "decoder_mid_resnet")
        self.mid = nn.Module()
        self.mid.block_1 = mid_resnet(block_in, block_in, cfg.dropout, norm_num_groups=groups)
        self.mid.attn_1 = _attention(cfg.decoder_attention, "decoder_attention", block_in, attn_impl, groups)
        self.mid.block_2 = mid_resnet(block_in, block_in, cfg.dropout, norm_num_groups=groups)

        levels = [None] * len(mult)  # stored in level order (up[0] = full resolution), run from the top
        for i in reversed(range(len(mult))):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * mult[i]
            resnet = resolve_module(cfg.decoder_resnet_blocks[i], "decoder_resnet_blocks")
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(resnet(block_in, block_out, cfg.dropout, norm_num_groups=groups))
                block_in = block_out
                if curr_res in cfg.attn_resolutions:
                    attn = _attention(cfg.decoder_attention, "decoder_attention", block_in, attn_impl, groups)
                    level.attn.append(attn)
            if cfg.decoder_spatial_upsample[i]:
                up = resolve_module(cfg.decoder_spatial_upsample[i], "decoder_spatial_upsample")
                level.upsample = up(block_in, block_in)
                curr_res *= 2
            if cfg.decoder_temporal_upsample[i]:
                tup = resolve_module(cfg.decoder_temporal_upsample[i], "decoder_temporal_upsample")
                level.time_upsample = tup(block_in, block_in)
            levels[i] = level
        self.up = nn.ModuleList(levels)

        self.norm_out = Normalize(block_in, groups)
        self.conv_out = resolve_module(cfg.decoder_conv_out, "decoder_conv_out")(block_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(self.up):
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn) > 0:
                    h = level.attn[i](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
            if hasattr(level, "time_upsample"):
                h = level.time_upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- the model


class CausalVideoVAE(VideoVAEMixin, ModelMixin, ConfigMixin):
    """Open-Sora-Plan 1.0 CausalVAEModel. State-dict names and shapes match the released weights.

    attn_impl: "compat_v100" (the released attention reshape, needed for the released weights) or
    "fixed" (true per-frame attention). None picks from the config: AttnBlock3D -> compat_v100,
    AttnBlock3DFix -> fixed.
    """

    config_name = "config.json"
    _keys_to_ignore_on_load_unexpected = [r"^loss\."]

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 128,
        hidden_size_mult: tuple = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        z_channels: int = 4,
        embed_dim: int = 4,
        double_z: bool = True,
        attn_resolutions: tuple = (),
        dropout: float = 0.0,
        resolution: int = 256,
        q_conv: str = "CausalConv3d",
        encoder_conv_in: str = "CausalConv3d",
        encoder_conv_out: str = "CausalConv3d",
        encoder_attention: str = "AttnBlock3D",
        encoder_resnet_blocks: tuple = ("ResnetBlock3D",) * 4,
        encoder_spatial_downsample: tuple = ("SpatialDownsample2x",) * 3 + ("",),
        encoder_temporal_downsample: tuple = ("TimeDownsample2x", "TimeDownsample2x", "", ""),
        encoder_mid_resnet: str = "ResnetBlock3D",
        decoder_conv_in: str = "CausalConv3d",
        decoder_conv_out: str = "CausalConv3d",
        decoder_attention: str = "AttnBlock3D",
        decoder_resnet_blocks: tuple = ("ResnetBlock3D",) * 4,
        decoder_spatial_upsample: tuple = ("",) + ("SpatialUpsample2x",) * 3,
        decoder_temporal_upsample: tuple = ("", "", "TimeUpsample2x", "TimeUpsample2x"),
        decoder_mid_resnet: str = "ResnetBlock3D",
        norm_num_groups: int = 32,
        attn_impl: str | None = None,
        scaling_factor: float = 0.18215,
        latents_mean: tuple | None = None,  # per-channel latent statistics (kinema vae calibrate); None: 0 and 1
        latents_std: tuple | None = None,
        # training-side fields of the release config, kept so the config round-trips; unused here
        loss_type: str | None = None,
        loss_params: dict | None = None,
        lr: float | None = None,
    ):
        super().__init__()
        self._check_config()
        if attn_impl is None:
            attn_impl = "fixed" if encoder_attention.rsplit(".", 1)[-1] == "AttnBlock3DFix" else "compat_v100"
        if attn_impl not in ATTN_IMPLS:
            raise KinemaError(f"unknown attn_impl {attn_impl!r}; use one of {', '.join(ATTN_IMPLS)}")
        self.attn_impl = attn_impl
        self.encoder = Encoder(self.config, attn_impl)
        self.decoder = Decoder(self.config, attn_impl)
        q_conv_cls = resolve_module(q_conv, "q_conv")
        self.quant_conv = q_conv_cls(2 * z_channels, 2 * embed_dim, 1)
        self.post_quant_conv = q_conv_cls(embed_dim, z_channels, 1)

        # tiling (plain attributes, not config, as upstream); see enable_tiling()
        n_spatial = sum(bool(s) for s in encoder_spatial_downsample)
        self.num_time_downsamples = sum(bool(s) for s in encoder_temporal_downsample)
        self.spatial_compression = 2**n_spatial
        self.temporal_compression = 2**self.num_time_downsamples
        self.latent_channels = embed_dim
        self.use_tiling = False
        self.use_slicing = False
        self.tile_overlap_factor = 0.25
        self.tile_norm_stats = "tile"  # "tile": per-tile GroupNorm statistics, as released; "shared": pooled
        self.norm_stats_passes = 1
        self.tile_halo = 0  # latents of extra context around each spatial tile (0: as released)
        self.tile_context_t = 0  # latents of extra past context before each temporal window (0: as released)
        self._set_tile_sizes(256, 65)

    def _check_config(self) -> None:
        cfg, levels = self.config, len(self.config.hidden_size_mult)
        for field in ("encoder_resnet_blocks", "encoder_spatial_downsample", "encoder_temporal_downsample",
                      "decoder_resnet_blocks", "decoder_spatial_upsample", "decoder_temporal_upsample"):
            if len(getattr(cfg, field)) != levels:
                raise KinemaError(f"config field {field!r} has {len(getattr(cfg, field))} entries but hidden_size_mult "
                               f"has {levels} levels; give one entry per level")
        if cfg.hidden_size % cfg.norm_num_groups:
            raise KinemaError(f"hidden_size {cfg.hidden_size} is not divisible by norm_num_groups "
                f"{cfg.norm_num_groups}")

    # --------------------------------------------------------------------- tiling / slicing switches

    def _set_tile_sizes(self, sample: int, sample_t: int) -> None:
        if (sample_t - 1) % self.temporal_compression:
            raise KinemaError(f"tile_sample_min_size_t={sample_t} must be 1 + a multiple of "
                              f"{self.temporal_compression}")
        self.tile_sample_min_size = sample
        self.tile_latent_min_size = sample // self.spatial_compression
        self.tile_sample_min_size_t = sample_t
        self.tile_latent_min_size_t = (sample_t - 1) // self.temporal_compression + 1

    def enable_tiling(self, use_tiling: bool = True, tile_sample_min_size: int | None = None,
                      tile_sample_min_size_t: int | None = None, tile_overlap_factor: float | None = None,
                      norm_stats: str | None = None, norm_stats_passes: int | None = None,
                      tile_halo: int | None = None, tile_context_t: int | None = None) -> None:
        """Tile in space (256 px tiles, overlap 0.25) and time (65-frame windows); sizes can be changed.

        norm_stats="tile" normalises each tile with its own GroupNorm statistics (as released, seams
        between tiles); "shared" pools them over all tiles (norm_stats_passes extra tiled passes).
        tile_halo: latents of context read around every spatial tile and cropped away (0 as released).
        tile_context_t: latents of past context read before every later temporal window (0 as released).
        """
        if norm_stats is not None and norm_stats not in ("tile", "shared"):
            raise KinemaError(f"norm_stats must be 'tile' or 'shared', got {norm_stats!r}")
        self.use_tiling = use_tiling
        self.tile_norm_stats = norm_stats or self.tile_norm_stats
        self.norm_stats_passes = norm_stats_passes or self.norm_stats_passes
        self.tile_halo = self.tile_halo if tile_halo is None else tile_halo
        self.tile_context_t = self.tile_context_t if tile_context_t is None else tile_context_t
        self._set_tile_sizes(tile_sample_min_size or self.tile_sample_min_size,
                             tile_sample_min_size_t or self.tile_sample_min_size_t)
        if tile_overlap_factor is not None:
            self.tile_overlap_factor = tile_overlap_factor

    def disable_tiling(self) -> None:
        self.use_tiling = False

    def enable_slicing(self) -> None:
        """Encode/decode one batch element at a time."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    # --------------------------------------------------------------------- encode

    def _tiles_needed(self, shape, tile: int, tile_t: int) -> bool:
        return self.use_tiling and (shape[2] > tile_t or shape[3] > tile or shape[4] > tile)

    def _encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_tiling and x.shape[2] > self.tile_sample_min_size_t:
            ctx = self.tile_context_t
            run = lambda: tiled_time(x, self._encode_space, self.tile_sample_min_size_t,
                                     ctx * self.temporal_compression, ctx)
        else:
            run = lambda: self._encode_space(x)
        if self.tile_norm_stats == "shared" and self._tiles_needed(
            x.shape, self.tile_sample_min_size, self.tile_sample_min_size_t
        ):
            return run_with_shared_stats(self.encoder, run, self.norm_stats_passes)
        return run()

    def _encode_space(self, x: torch.Tensor) -> torch.Tensor:
        tile = self.tile_sample_min_size
        if self.use_tiling and (x.shape[3] > tile or x.shape[4] > tile):
            fn = lambda t: self.quant_conv(self.encoder(t))
            halo = self.tile_halo * self.spatial_compression
            return tiled_2d(x, fn, tile, self.tile_latent_min_size, self.tile_overlap_factor, halo)
        return self.quant_conv(self.encoder(x))

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """Video [B,3,T,H,W] -> posterior over latents (moments of every tile blended, as upstream)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise KinemaError(f"CausalVideoVAE.encode expects a video [B,3,T,H,W], got shape {tuple(x.shape)}")
        if self.use_slicing and x.shape[0] > 1:
            moments = torch.cat([self._encode_moments(xi) for xi in x.split(1)])
        else:
            moments = self._encode_moments(x)
        posterior = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # --------------------------------------------------------------------- decode

    def _decode_video(self, z: torch.Tensor) -> torch.Tensor:
        if self.use_tiling and z.shape[2] > self.tile_latent_min_size_t:
            ctx = self.tile_context_t
            run = lambda: tiled_time(z, self._decode_space, self.tile_latent_min_size_t,
                                     ctx, ctx * self.temporal_compression)
        else:
            run = lambda: self._decode_space(z)
        if self.tile_norm_stats == "shared" and self._tiles_needed(
            z.shape, self.tile_latent_min_size, self.tile_latent_min_size_t
        ):
            return run_with_shared_stats(self.decoder, run, self.norm_stats_passes)
        return run()

    def _decode_space(self, z: torch.Tensor) -> torch.Tensor:
        tile = self.tile_latent_min_size
        if self.use_tiling and (z.shape[3] > tile or z.shape[4] > tile):
            fn = lambda t: self.decoder(self.post_quant_conv(t))
            return tiled_2d(z, fn, tile, self.tile_sample_min_size, self.tile_overlap_factor, self.tile_halo)
        return self.decoder(self.post_quant_conv(z))

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        """Latent [B,C,t,h,w] (unscaled) -> video [B,3,1+4(t-1),8h,8w]."""
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise KinemaError(f"CausalVideoVAE.decode expects latents [B,{self.latent_channels},t,h,w], "
                           f"got shape {tuple(z.shape)}")
        if self.use_slicing and z.shape[0] > 1:
            video = torch.cat([self._decode_video(zi) for zi in z.split(1)])
        else:
            video = self._decode_video(z)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(self, x: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None):
        """Reconstruction and posterior (for training)."""
        posterior = self.encode(x).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z).sample, posterior

    def get_last_layer(self) -> torch.Tensor:
        """The weight the adaptive GAN weight is measured on (decoder.conv_out)."""
        return self.decoder.conv_out.conv.weight

    def encoder_modules(self) -> tuple[nn.Module, ...]:
        """The modules that compute the latents (frozen when only the decoder is trained)."""
        return self.encoder, self.quant_conv

    # --------------------------------------------------------------------- shapes

    def latent_size(self, size: tuple[int, int, int]) -> tuple[int, int, int]:
        t, h, w = size
        for _ in range(self.num_time_downsamples):
            t = (t - 1) // 2 + 1
        return t, h // self.spatial_compression, w // self.spatial_compression


# ----------------------------------------------------------------------------- release config


def release_config() -> dict:
    """The fields of Open-Sora-Plan v1.0.0 scripts/causalvae/release.json (config.json of the HF vae)."""
    return {
        "_class_name": "CausalVAEModel",
        "_diffusers_version": "0.27.2",
        "attn_resolutions": [],
        "decoder_attention": "AttnBlock3D",
        "decoder_conv_in": "CausalConv3d",
        "decoder_conv_out": "CausalConv3d",
        "decoder_mid_resnet": "ResnetBlock3D",
        "decoder_resnet_blocks": ["ResnetBlock3D"] * 4,
        "decoder_spatial_upsample": ["", "SpatialUpsample2x", "SpatialUpsample2x", "SpatialUpsample2x"],
        "decoder_temporal_upsample": ["", "", "TimeUpsample2x", "TimeUpsample2x"],
        "double_z": True,
        "dropout": 0.0,
        "embed_dim": 4,
        "encoder_attention": "AttnBlock3D",
        "encoder_conv_in": "CausalConv3d",
        "encoder_conv_out": "CausalConv3d",
        "encoder_mid_resnet": "ResnetBlock3D",
        "encoder_resnet_blocks": ["ResnetBlock3D"] * 4,
        "encoder_spatial_downsample": ["SpatialDownsample2x", "SpatialDownsample2x", "SpatialDownsample2x", ""],
        "encoder_temporal_downsample": ["TimeDownsample2x", "TimeDownsample2x", "", ""],
        "hidden_size": 128,
        "hidden_size_mult": [1, 2, 4, 4],
        "loss_params": {"disc_start": 2001, "disc_weight": 0.5, "kl_weight": 1e-06, "logvar_init": 0.0},
        "loss_type": "opensora.models.ae.videobase.losses.LPIPSWithDiscriminator",
        "lr": 1e-05,
        "num_res_blocks": 2,
        "q_conv": "CausalConv3d",
        "resolution": 256,
        "z_channels": 4,
    }


def tiny_config(hidden_size: int = 8, norm_num_groups: int = 4, levels: int = 3, **overrides) -> dict:
    """A small config with the release's layout rules, for tests and CPU experiments.

    levels=4 keeps the release level structure (4x8x8); levels=3 gives 4x4x4.
    """
    mult = [1, 2, 4, 4] if levels == 4 else [1] + [2] * (levels - 1)
    spatial = ["SpatialDownsample2x"] * (levels - 1) + [""]
    n_time = min(2, levels - 1)
    cfg = {
        **{k: v for k, v in release_config().items() if not k.startswith("_")},
        "hidden_size": hidden_size,
        "hidden_size_mult": mult,
        "num_res_blocks": 1,
        "norm_num_groups": norm_num_groups,
        "encoder_resnet_blocks": ["ResnetBlock3D"] * levels,
        "decoder_resnet_blocks": ["ResnetBlock3D"] * levels,
        "encoder_spatial_downsample": spatial,
        "encoder_temporal_downsample": ["TimeDownsample2x"] * n_time + [""] * (levels - n_time),
        "decoder_spatial_upsample": [""] + ["SpatialUpsample2x"] * (levels - 1),
        "decoder_temporal_upsample": [""] * (levels - n_time) + ["TimeUpsample2x"] * n_time,
    }
    cfg.update(overrides)
    return cfg
