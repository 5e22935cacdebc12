"""kinema.vae: the causal video VAE of Open-Sora-Plan 1.0, the frame-wise SD VAE of Open-Sora 1.0/1.1,
2-D -> 3-D inflation, spatial+temporal tiling, VAE losses and reconstruction metrics."""

from .causal_vae import CausalVideoVAE, release_config, tiny_config
from .distribution import DiagonalGaussianDistribution
from .framewise import FramewiseSDVAE
from .inflate import inflate_autoencoder_kl
from .interface import fit_num_frames, format_video_shape
from .loading import load_causal_vae, load_vae

__all__ = [
    "CausalVideoVAE",
    "DiagonalGaussianDistribution",
    "FramewiseSDVAE",
    "fit_num_frames",
    "format_video_shape",
    "inflate_autoencoder_kl",
    "load_causal_vae",
    "load_vae",
    "release_config",
    "tiny_config",
]
