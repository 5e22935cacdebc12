"""VAE training losses (kept outside the model: building a VAE never builds VGG or a GAN)."""

from .discriminator import NLayerDiscriminator, NLayerDiscriminator3D, hinge_d_loss, vanilla_d_loss
from .perceptual import LPIPS, PERCEPTUAL_LOSSES, PerceptualWeightsMissing, build_perceptual_loss
from .vae_loss import VAELoss

__all__ = [
    "LPIPS",
    "NLayerDiscriminator",
    "NLayerDiscriminator3D",
    "PERCEPTUAL_LOSSES",
    "PerceptualWeightsMissing",
    "VAELoss",
    "build_perceptual_loss",
    "hinge_d_loss",
    "vanilla_d_loss",
]
