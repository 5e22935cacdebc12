"""Real video: a tiny VAE trained briefly on some clips reconstructs held-out clips better than before."""

import pytest
import torch
from conftest import tiny_autoencoder_kl

from kinema.vae.data import ClipBank, load_clip
from kinema.vae.inflate import inflate_autoencoder_kl
from kinema.vae.losses import VAELoss
from kinema.vae.metrics import video_metrics
from kinema.vae.train import TrainConfig, save_atomic, train_vae


def _held_out_metrics(vae, held):
    rows = []
    with torch.no_grad():
        for clip in held:
            recon = vae.reconstruct(clip[None])[0].clamp(-1, 1)
            rows.append(video_metrics((clip.transpose(0, 1) + 1) / 2, (recon.transpose(0, 1) + 1) / 2))
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


@pytest.fixture(scope="module")
def trained(clips):
    bank = ClipBank(clips[:4], resolution=32, max_frames=17)
    held = [load_clip(p, 9, 32) for p in clips[-3:]]
    vae = inflate_autoencoder_kl(tiny_autoencoder_kl())
    before = _held_out_metrics(vae, held)
    history = train_vae(vae, VAELoss(discriminator=None), bank,
                        TrainConfig(steps=30, batch_size=1, num_frames=9, lr=3e-3, log_every=10))
    return vae, held, before, _held_out_metrics(vae, held), history


def test_brief_training_beats_the_untrained_inflation_on_held_out_clips(trained, tmp_path):
    vae, _, before, after, history = trained
    assert history[-1]["rec_loss"] < history[0]["rec_loss"]
    assert after["psnr"] > before["psnr"] and after["ssim"] > before["ssim"] + 0.02
    save_atomic(vae, tmp_path / "vae")
    assert (tmp_path / "vae" / "config.json").is_file() and not (tmp_path / "vae.tmp").exists()



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
