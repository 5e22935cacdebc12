"""kinema.vae: the causal video VAE of Open-Sora-Plan 1.0, the frame-wise SD VAE of Open-Sora 1.0/1.1,
2-D -> 3-D inflation, spatial+temporal tiling, VAE losses and reconstruction metrics.

Names load on first use, so discovering the plugin does not import torch or diffusers.
"""

from kinema.core import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "CausalVideoVAE": ".causal_vae",
    "DiagonalGaussianDistribution": ".distribution",
    "FramewiseSDVAE": ".framewise",
    "fit_num_frames": ".interface",
    "format_video_shape": ".interface",
    "inflate_autoencoder_kl": ".inflate",
    "load_causal_vae": ".loading",
    "load_vae": ".loading",
    "release_config": ".causal_vae",
    "tiny_config": ".causal_vae",
})

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
