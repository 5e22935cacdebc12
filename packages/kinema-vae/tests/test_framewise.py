import pytest
import torch
from conftest import tiny_autoencoder_kl

from kinema.core import KinemaError, lookup
from kinema.vae import CausalVideoVAE, FramewiseSDVAE, load_vae


def test_framewise_equals_autoencoder_kl_per_frame_and_micro_batching_changes_nothing():
    vae2d = tiny_autoencoder_kl()
    vae = FramewiseSDVAE.from_autoencoder_kl(vae2d).eval()
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        post = vae.encode(x).latent_dist
        assert post.mean.shape == (2, 4, 5, 4, 4)
        ref = vae2d.encode(x[1, :, 3][None]).latent_dist.mean[0]
        assert torch.allclose(post.mean[1, :, 3], ref, atol=1e-5)
        out = vae.decode(post.mean).sample
        assert torch.allclose(out[0, :, 2], vae2d.decode(post.mean[0, :, 2][None]).sample[0], atol=1e-5)
        vae.micro_batch_size = 3
        vae.enable_slicing()
        assert torch.allclose(vae.encode(x).latent_dist.mean, post.mean, atol=1e-5)
        assert torch.allclose(vae.decode(post.mean).sample, out, atol=1e-5)


def test_framewise_interface():
    vae = FramewiseSDVAE.from_autoencoder_kl(tiny_autoencoder_kl()).eval()
    assert (vae.temporal_compression, vae.spatial_compression, vae.latent_channels) == (1, 4, 4)
    assert vae.scaling_factor == 0.18215
    assert vae.latent_size((7, 32, 16)) == (7, 8, 4)
    x = torch.rand(1, 3, 7, 16, 16) * 2 - 1
    with torch.no_grad():
        z = vae.encode_video(x, sample=False)
        assert z.shape == (1, 4, 7, 4, 4)
        assert vae.decode_video(z).shape == x.shape
    with pytest.raises(KinemaError, match="latents"):
        vae.decode(torch.zeros(1, 3, 1, 4, 4))


def test_save_load_and_diffusers_folder(tmp_path):
    vae2d = tiny_autoencoder_kl()
    vae2d.save_pretrained(tmp_path / "sd")
    wrapped = load_vae(tmp_path / "sd", micro_batch_size=2)
    assert isinstance(wrapped, FramewiseSDVAE) and wrapped.micro_batch_size == 2
    wrapped.save_pretrained(tmp_path / "fw")
    again = load_vae(tmp_path / "fw")
    assert torch.equal(again.module.encoder.conv_in.weight, vae2d.encoder.conv_in.weight)


def test_both_vaes_are_registered():
    assert lookup("vae", "causal-video-vae") is CausalVideoVAE
    assert lookup("vae", "sd-vae-framewise") is FramewiseSDVAE
