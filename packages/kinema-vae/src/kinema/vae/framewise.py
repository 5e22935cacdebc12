"""Frame-wise SD VAE (Open-Sora 1.0/1.1 `VideoAutoencoderKL`): a diffusers AutoencoderKL per frame.

Frames are folded into the batch ("(B T) C H W") and processed micro_batch_size frames at a
time, so memory is bounded by the micro-batch, not the clip length. No temporal compression.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from kinema.core import KinemaError

from .distribution import DiagonalGaussianDistribution
from .interface import VideoVAEMixin


def _fold(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def _unfold(x: torch.Tensor, b: int) -> torch.Tensor:
    bt, c, h, w = x.shape
    return x.reshape(b, bt // b, c, h, w).permute(0, 2, 1, 3, 4)


class FramewiseSDVAE(VideoVAEMixin, ModelMixin, ConfigMixin):
    """Video VAE that applies an SD image VAE (diffusers AutoencoderKL) to every frame.

    `autoencoder_kl` holds the AutoencoderKL config (defaults: the SD VAE layout);
    micro_batch_size=None processes all frames at once.
    """

    temporal_compression = 1

    @register_to_config
    def __init__(self, autoencoder_kl: dict | None = None, micro_batch_size: int | None = None,
                 scaling_factor: float = 0.18215):
        super().__init__()
        sd_layout = {
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [128, 256, 512, 512],
            "layers_per_block": 2,
            "latent_channels": 4,
            "sample_size": 256,
        }
        kl_config = {k: v for k, v in (autoencoder_kl or sd_layout).items() if not k.startswith("_")}
        self.module = AutoencoderKL(**kl_config)  # `module` as upstream
        self.micro_batch_size = micro_batch_size
        self.latent_channels = self.module.config.latent_channels
        self.spatial_compression = 2 ** (len(self.module.config.block_out_channels) - 1)
        self.use_slicing = False

    @classmethod
    def from_autoencoder_kl(cls, vae: AutoencoderKL | str | Path, micro_batch_size: int | None = None):
        """Wrap an AutoencoderKL object, or load one from a diffusers folder (config.json + weights)."""
        if not isinstance(vae, AutoencoderKL):
            path = Path(vae)
            if not (path / "config.json").is_file():
                raise KinemaError(f"{str(path)!r} is not a diffusers AutoencoderKL folder (no config.json)")
            vae = AutoencoderKL.from_pretrained(path, low_cpu_mem_usage=False)
        kl_config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
        model = cls(autoencoder_kl=kl_config, micro_batch_size=micro_batch_size,
                    scaling_factor=vae.config.scaling_factor)
        model.module.load_state_dict(vae.state_dict())
        return model

    # --------------------------------------------------------------------- switches

    def enable_tiling(self, use_tiling: bool = True) -> None:
        """Spatial tiling inside each frame (diffusers AutoencoderKL tiling)."""
        self.module.enable_tiling(use_tiling)

    def disable_tiling(self) -> None:
        self.module.disable_tiling()

    def enable_slicing(self) -> None:
        """One batch element at a time (frames stay micro-batched)."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    @property
    def use_tiling(self) -> bool:
        return self.module.use_tiling

    def _chunks(self, frames: torch.Tensor):
        step = self.micro_batch_size or frames.shape[0]
        return frames.split(step)

    # --------------------------------------------------------------------- encode / decode

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        if x.ndim != 5 or x.shape[1] != 3:
            raise KinemaError(f"FramewiseSDVAE.encode expects a video [B,3,T,H,W], got shape {tuple(x.shape)}")
        parts = x.split(1) if self.use_slicing else (x,)
        moments = []
        for part in parts:
            frames = _fold(part)
            m = torch.cat([self.module.encode(f).latent_dist.parameters for f in self._chunks(frames)])
            moments.append(_unfold(m, part.shape[0]))
        posterior = DiagonalGaussianDistribution(torch.cat(moments))
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        if z.ndim != 5 or z.shape[1] != self.latent_channels:
            raise KinemaError(f"FramewiseSDVAE.decode expects latents [B,{self.latent_channels},T,h,w], "
                           f"got shape {tuple(z.shape)}")
        parts = z.split(1) if self.use_slicing else (z,)
        videos = []
        for part in parts:
            frames = _fold(part)
            out = torch.cat([self.module.decode(f).sample for f in self._chunks(frames)])
            videos.append(_unfold(out, part.shape[0]))
        video = torch.cat(videos)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(self, x: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None):
        posterior = self.encode(x).latent_dist
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(z).sample, posterior

    def get_last_layer(self) -> torch.Tensor:
        return self.module.decoder.conv_out.weight

    def encoder_modules(self) -> tuple[nn.Module, ...]:
        """The modules that compute the latents (frozen when only the decoder is trained)."""
        return self.module.encoder, self.module.quant_conv

    def latent_size(self, size: tuple[int, int, int]) -> tuple[int, int, int]:
        t, h, w = size
        return t, h // self.spatial_compression, w // self.spatial_compression


def is_autoencoder_kl_folder(path: Path) -> bool:
    cfg = path / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get("_class_name") == "AutoencoderKL"
