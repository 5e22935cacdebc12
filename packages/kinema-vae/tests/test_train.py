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


def _tiny_vaes():
    from conftest import tiny_autoencoder_kl

    from kinema.vae import CausalVideoVAE, FramewiseSDVAE, tiny_config

    torch.manual_seed(0)
    return [CausalVideoVAE.from_config(tiny_config()), FramewiseSDVAE.from_autoencoder_kl(tiny_autoencoder_kl())]


def test_encoder_modules_are_exactly_what_computes_the_latents():
    """`--decoder-only` freezes encoder_modules(): every weight the latents depend on, and none the decoder uses."""
    for vae in _tiny_vaes():
        frozen = {id(p) for m in vae.encoder_modules() for p in m.parameters()}
        x = torch.randn(1, 3, 5, 16, 16)
        vae.zero_grad()
        posterior = vae.encode(x).latent_dist
        (posterior.mean.square().sum() + posterior.std.square().sum()).backward()
        used_by_encode = {id(p) for p in vae.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        vae.zero_grad()
        z = torch.randn_like(vae.encode(x).latent_dist.mean)
        vae.decode(z).sample.square().sum().backward()
        used_by_decode = {id(p) for p in vae.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        name = type(vae).__name__
        assert used_by_encode == frozen, name
        assert not used_by_decode & frozen, name
        assert used_by_decode | frozen == {id(p) for p in vae.parameters()}, name
