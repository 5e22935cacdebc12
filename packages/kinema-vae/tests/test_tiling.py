import math

import torch
from conftest import real_clips, tiny_autoencoder_kl, tiny_causal_vae

from kinema.vae.data import load_clip
from kinema.vae.inflate import inflate_autoencoder_kl
from kinema.vae.modules import AttnBlock3D, ResnetBlock3D
from kinema.vae.tiling import blend_h, blend_v, temporal_windows, tiled_2d, tiled_time


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


def _zero_residual_vae():
    """A tiny VAE whose residual branches and attention output start at zero (zero-init of each branch's
    last layer). Random deep branches make a network chaotic: any change of context, such as a tile
    border, changes everything; a trained VAE is close to local, and so is this one."""
    vae = tiny_causal_vae(attn_impl="fixed")
    with torch.no_grad():
        for m in vae.modules():
            if isinstance(m, ResnetBlock3D):
                m.conv2.conv.weight.zero_()
            if isinstance(m, AttnBlock3D):
                m.proj_out.conv.weight.zero_()
    return vae


def test_tiled_reconstruction_matches_untiled_in_space_and_time():
    vae = _zero_residual_vae()
    x = load_clip(real_clips()[-1], 17, 48)[None]  # 48 px > 32 px tiles and 17 frames > 9-frame windows
    scores = {}
    with torch.no_grad():
        ref = vae.reconstruct(x)
        seamless = {"norm_stats": "shared", "tile_halo": 2, "tile_context_t": 1}
        for name, kw in {"as released": {}, "seamless": seamless}.items():
            vae.enable_tiling(tile_sample_min_size=32, tile_sample_min_size_t=9, **kw)
            scores[name] = _psnr(ref, vae.reconstruct(x))
            vae.disable_tiling()
            vae.tile_norm_stats, vae.tile_halo, vae.tile_context_t = "tile", 0, 0
    # the released rules are lossy (per-tile GroupNorm statistics, zero-padded tile borders, hard time seams)
    assert scores["seamless"] >= 35, scores
    assert scores["seamless"] > scores["as released"] + 10, scores


def test_halo_and_context_leave_shapes_alone_and_default_off():
    vae = tiny_causal_vae()
    assert (vae.tile_norm_stats, vae.tile_halo, vae.tile_context_t) == ("tile", 0, 0)
    x = torch.rand(1, 3, 17, 48, 40) * 2 - 1
    vae.enable_tiling(tile_sample_min_size=32, tile_sample_min_size_t=9, tile_halo=2, tile_context_t=1)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        assert z.shape == (1, 4, 5, 12, 10)
        assert vae.decode(z).sample.shape == x.shape


def test_temporal_context_drops_exactly_its_share():
    # encode-like fn: 1 + (n-1)/4 outputs per window; 8 context frames (2 latents), clipped at the clip start
    x = torch.arange(33.0).view(1, 1, 33, 1, 1)
    enc = lambda t: t[:, :, ::4]
    plain = tiled_time(x, enc, 9)
    for context, context_out in ((4, 1), (8, 2), (12, 3)):
        assert torch.equal(tiled_time(x, enc, 9, context, context_out), plain)
