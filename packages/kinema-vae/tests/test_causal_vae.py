import json
import warnings

import pytest
import torch
from conftest import DATA, tiny_causal_vae

from kinema.core import KinemaError
from kinema.vae import CausalVideoVAE, release_config, tiny_config


@pytest.fixture(scope="module")
def release_on_meta():
    with torch.device("meta"):
        return CausalVideoVAE.from_config(release_config())


def test_release_state_dict_names_shapes_and_count(release_on_meta):
    ref = json.loads((DATA / "causal_vae_release_shapes.json").read_text())
    ours = {k: list(v.shape) for k, v in release_on_meta.state_dict().items()}
    assert sorted(ours) == sorted(ref["shapes"])
    assert ours == ref["shapes"]
    assert sum(p.numel() for p in release_on_meta.parameters()) == ref["parameter_count"] == 229_169_895
    assert release_on_meta.attn_impl == "compat_v100"  # AttnBlock3D in the release config
    assert release_on_meta.scaling_factor == 0.18215
    assert (release_on_meta.temporal_compression, release_on_meta.spatial_compression) == (4, 8)


@pytest.mark.parametrize(("thw", "latent"), [((17, 256, 256), (5, 32, 32)), ((65, 512, 512), (17, 64, 64)),
                                             ((1, 256, 256), (1, 32, 32))])
def test_release_shapes_propagate(release_on_meta, thw, latent):
    x = torch.empty(1, 3, *thw, device="meta")
    with torch.no_grad():
        posterior = release_on_meta.encode(x).latent_dist
        assert tuple(posterior.mean.shape) == (1, 4, *latent)
        assert tuple(release_on_meta.decode(posterior.mean).sample.shape) == (1, 3, *thw)
    assert release_on_meta.latent_size(thw) == latent


def test_reduced_channel_round_trip_with_release_level_structure():
    vae = tiny_causal_vae(levels=4)  # 8/16/32/32 channels, same 4 levels and 4x8x8 as the release
    assert sum(p.numel() for p in vae.parameters()) < 1_000_000
    x = torch.rand(1, 3, 17, 256, 256) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        assert posterior.mean.shape == (1, 4, 5, 32, 32)
        out = vae.decode(posterior.sample()).sample
    assert out.shape == (1, 3, 17, 256, 256) and torch.isfinite(out).all()


def test_sample_and_mode():
    vae = tiny_causal_vae()
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        post = vae.encode(x).latent_dist
    assert torch.equal(post.mode(), post.mean)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(post.sample(g1), post.sample(g2))
    noise = post.sample() - post.mean
    assert noise.abs().max() > 0
    assert post.kl().shape == (2,)
    ref = 0.5 * (post.mean**2 + post.var - 1 - post.logvar)
    assert torch.allclose(post.kl(), ref.flatten(1).sum(1))


def test_encode_video_scales_and_decode_video_unscales():
    vae = tiny_causal_vae()
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        z = vae.encode_video(x, sample=False)
        assert torch.allclose(z, vae.encode(x).latent_dist.mode() * 0.18215)
        assert torch.allclose(vae.decode_video(z), vae.decode(z / 0.18215).sample, atol=1e-6)
    assert vae.latent_size((9, 16, 16)) == tuple(z.shape[2:]) == (3, 4, 4)
    assert vae.latent_channels == 4 and vae.temporal_compression == 4 and vae.spatial_compression == 4


def test_frame_count_not_1_plus_4k_is_trimmed_or_padded_with_a_warning():
    vae = tiny_causal_vae()
    x = torch.rand(1, 3, 8, 16, 16) * 2 - 1
    with torch.no_grad(), pytest.warns(UserWarning, match="8 frames is not 1\\+4k; trimmed to 5"):
        assert vae.encode_video(x).shape[2] == 2
    with torch.no_grad(), pytest.warns(UserWarning, match="padded .* to 9 frames"):
        assert vae.encode_video(x, frame_policy="pad").shape[2] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid count is left alone
        with torch.no_grad():
            vae.encode_video(x[:, :, :5])


def test_still_video_first_latent_equals_image_latent():
    # GroupNorm pools over time (as released); a still video has the image's statistics, so the
    # causal path alone decides whether latent frame 0 is the image's latent.
    vae = tiny_causal_vae(attn_impl="fixed")
    img = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        z_img = vae.encode(img).latent_dist.mode()
        z_vid = vae.encode(img.expand(-1, -1, 5, -1, -1)).latent_dist.mode()
    assert torch.allclose(z_img[:, :, 0], z_vid[:, :, 0], atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    vae = tiny_causal_vae(attn_impl="fixed")
    vae.save_pretrained(tmp_path)
    again = CausalVideoVAE.from_pretrained(tmp_path)
    assert again.attn_impl == "fixed"
    for k, v in vae.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_bad_config_and_inputs_give_clear_errors():
    with pytest.raises(KinemaError, match="TimeDownsampleRes2x"):
        CausalVideoVAE.from_config(tiny_config(encoder_temporal_downsample=["TimeDownsampleRes2x", "", ""]))
    with pytest.raises(KinemaError, match="3 levels"):
        CausalVideoVAE.from_config(tiny_config(encoder_resnet_blocks=["ResnetBlock3D"]))
    with pytest.raises(KinemaError, match="attn_impl"):
        CausalVideoVAE.from_config(tiny_config(attn_impl="nope"))
    vae = tiny_causal_vae()
    with pytest.raises(KinemaError, match=r"\[B,3,T,H,W\]"):
        vae.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(KinemaError, match="latents"):
        vae.decode(torch.zeros(1, 3, 2, 4, 4))



def test_slicing_gives_the_batched_result():
    vae = tiny_causal_vae()
    x = torch.rand(3, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        out = vae.decode(z).sample
        vae.enable_slicing()
        assert torch.allclose(vae.encode(x).latent_dist.mode(), z, atol=1e-5)
        assert torch.allclose(vae.decode(z).sample, out, atol=1e-5)
