"""Real video: a tiny VAE trained briefly (`kinema vae train`, on kinema-train's shared trainer) on some clips
reconstructs held-out clips better than before."""

import shutil

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_autoencoder_kl

from kinema.core.cli import build_cli
from kinema.vae.data import load_clip
from kinema.vae.inflate import inflate_autoencoder_kl
from kinema.vae.loading import load_vae
from kinema.vae.metrics import video_metrics
from kinema.vae.train import save_atomic


def _held_out_metrics(vae, held):
    rows = []
    with torch.no_grad():
        for clip in held:
            recon = vae.reconstruct(clip[None])[0].clamp(-1, 1)
            rows.append(video_metrics((clip.transpose(0, 1) + 1) / 2, (recon.transpose(0, 1) + 1) / 2))
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    data.mkdir()
    for clip in clips[:4]:
        shutil.copy(clip, data / clip.name)
    held = [load_clip(p, 9, 32) for p in clips[-3:]]
    save_atomic(inflate_autoencoder_kl(tiny_autoencoder_kl()), root / "init")
    before = _held_out_metrics(load_vae(root / "init"), held)
    res = CliRunner().invoke(build_cli(), ["vae", "train", str(data), "-o", str(root / "run"), "--init",
                                           str(root / "init"), "--steps", "30", "--frames", "9", "--resolution", "32",
                                           "--lr", "3e-3", "--sample-every", "0", "--set", "logging.progress=false"])
    assert res.exit_code == 0, res.output
    return root / "run", held, before, _held_out_metrics(load_vae(root / "run" / "vae"), held)


def test_brief_training_beats_the_untrained_inflation_on_held_out_clips(trained):
    run, _, before, after = trained
    import csv

    with open(run / "metrics.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert after["psnr"] > before["psnr"] and after["ssim"] > before["ssim"] + 0.02
    assert (run / "vae" / "config.json").is_file() and not (run / "vae.tmp").exists()


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
