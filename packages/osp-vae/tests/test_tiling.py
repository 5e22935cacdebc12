import math

import torch
from conftest import tiny_autoencoder_kl

from osp.vae.inflate import inflate_autoencoder_kl
from osp.vae.tiling import blend_h, blend_v, temporal_windows, tiled_2d, tiled_time


def test_blend_is_a_linear_cross_fade():
    a, b = torch.zeros(1, 1, 1, 4, 4), torch.ones(1, 1, 1, 4, 4)
    v = blend_v(a, b, 4)
    assert torch.allclose(v[0, 0, 0, :, 0], torch.tensor([0.0, 0.25, 0.5, 0.75]))
    h = blend_h(a, b, 2)
    assert torch.allclose(h[0, 0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_release_tile_geometry_512():
    # 512^2: encode tiles at 0/192/384 px -> 32+32+16 latents, keep 24+24+16; decode mirrors it
    starts = []
    fn = lambda t: (starts.append(t.shape[-1]), torch.nn.functional.avg_pool3d(t, (1, 8, 8)))[1]
    x = torch.randn(1, 2, 1, 512, 512)
    z = tiled_2d(x, fn, 256, 32, 0.25)
    assert z.shape[-2:] == (64, 64) and starts[:3] == [256, 256, 128]
    assert torch.allclose(z, torch.nn.functional.avg_pool3d(x, (1, 8, 8)), atol=1e-6)
    up = lambda t: t.repeat_interleave(8, 3).repeat_interleave(8, 4)
    y = tiled_2d(z, up, 32, 256, 0.25)
    assert y.shape[-2:] == (512, 512) and torch.allclose(y, up(z), atol=1e-6)


def test_temporal_windows_follow_the_rollback_rule():
    assert temporal_windows(65, 65) == [(0, 65)]
    assert temporal_windows(129, 65) == [(0, 65), (64, 129)]
    assert temporal_windows(69, 65) == [(0, 65), (64, 69)]
    assert temporal_windows(33, 17) == [(0, 17), (16, 33)]
    # encoding each window to 1+(n-1)/4 latents and dropping the first of later windows gives (T-1)/4+1
    x = torch.zeros(1, 1, 129, 1, 1)
    enc = lambda t: t[:, :, ::4]
    assert tiled_time(x, enc, 65).shape[2] == 33


def _psnr(a, b):
    return 10 * math.log10(4.0 / ((a - b) ** 2).mean().item())


def test_tiling_matches_diffusers_autoencoder_kl_tiling_on_images():
    # Same tile rules as diffusers: at T=1 the inflated VAE's tiled output equals AutoencoderKL's tiled output.
    vae2d = tiny_autoencoder_kl()
    vae3d = inflate_autoencoder_kl(vae2d, attn_impl="fixed")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    vae2d.enable_tiling()
    vae2d.tile_sample_min_size, vae2d.tile_latent_min_size, vae2d.tile_overlap_factor = 32, 8, 0.25
    vae3d.enable_tiling(tile_sample_min_size=32)
    with torch.no_grad():
        ref = vae2d.decode(vae2d.encode(x).latent_dist.mode()).sample
        out = vae3d.decode(vae3d.encode(x[:, :, None]).latent_dist.mode()).sample[:, :, 0]
    assert torch.allclose(ref, out, atol=1e-4)
