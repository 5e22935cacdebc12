"""The latent noise the VAE's decoder learns under (`kinema vae train --latent-noise`). Training itself runs on
kinema-train's shared trainer and is tested there (kinema-train/tests/test_vae_front.py)."""

import torch


def test_latent_noise_is_relative_to_each_channels_spread():
    from kinema.vae.train import noisy_latents

    def relative_noise(z):
        torch.manual_seed(0)
        return (noisy_latents(z, 0.4) - z).std(dim=(0, 2, 3, 4)) / z.std(dim=(0, 2, 3, 4))

    z = torch.randn(8, 3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    z = z * torch.tensor([0.01, 1.0, 50.0]).view(1, 3, 1, 1, 1)
    assert noisy_latents(z, 0.0) is z
    assert torch.allclose(relative_noise(z), torch.full((3,), 0.4), rtol=0.1)
    # the encoder cannot escape it by scaling its latents up
    assert torch.allclose(relative_noise(z * 100), relative_noise(z), rtol=1e-3)


def test_latent_noise_passes_gradients_to_the_encoder_unchanged():
    from kinema.vae.train import noisy_latents

    z = torch.randn(4, 2, 1, 4, 4, requires_grad=True)
    noisy_latents(z, 0.5).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
