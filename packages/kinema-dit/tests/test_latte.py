import math

import pytest
import torch
from diffusers import LatteTransformer3DModel

from kinema.core import KinemaError
from kinema.dit.latte import LatteT2V, LatteT2V_XL_122, sincos_2d

TINY = dict(sample_size=8, num_layers=2, num_attention_heads=2, attention_head_dim=8, caption_channels=12,
            caption_num_tokens=6)


def tiny(**overrides) -> LatteT2V:
    torch.manual_seed(0)
    return LatteT2V(**{**TINY, **overrides}).eval()


def inputs(batch=2, frames=5, size=8, tokens=6, channels=12, caption_rows=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, frames, size, size, generator=g)
    t = torch.tensor([3, 700][:batch])
    shape = (batch, tokens, channels) if caption_rows is None else (batch, caption_rows, tokens, channels)
    return x, t, torch.randn(*shape, generator=g)


def dense_sincos(dim, position):
    """The 1-D sin-cos formula written out element by element."""
    half = dim // 2
    return torch.tensor([math.sin(position / 10000 ** (i / half)) for i in range(half)]
                        + [math.cos(position / 10000 ** (i / half)) for i in range(half)])


# ---------------------------------------------------------------------------------------------------------------
# Reference: diffusers' LatteTransformer3DModel, the same architecture without joint images / pos interpolation
# ---------------------------------------------------------------------------------------------------------------

def test_matches_diffusers_latte_on_video_latents():
    model = tiny(video_length=5)
    reference = LatteTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
        cross_attention_dim=16, attention_bias=True, sample_size=8, patch_size=2, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
        caption_channels=12, video_length=5).eval()
    state = model.state_dict()
    # Same parameter names; only the unused null-caption buffer is extra on our side.
    assert set(state) - set(reference.state_dict()) == {"caption_projection.y_embedding"}
    assert set(reference.state_dict()) <= set(state)
    reference.load_state_dict({k: v for k, v in state.items() if k != "caption_projection.y_embedding"})

    x, t, y = inputs()
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    bias = ((1 - mask.float()) * -10000.0).repeat_interleave(5, dim=0)[:, None]  # diffusers takes per-frame bias
    with torch.no_grad():
        ours = model(x, t, y, mask)
        theirs = reference(x, t, y, encoder_attention_mask=bias).sample
    assert ours.shape == (2, 8, 5, 8, 8)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Position embeddings
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("video_length, scale", [(5, 1), (17, 3), (1, 1), (9, 1), (65, 13)])
def test_temporal_pos_embed_interpolation(video_length, scale):
    model = LatteT2V(**{**TINY, "video_length": video_length})
    assert model.temp_interpolation_scale == scale
    expected = torch.stack([dense_sincos(16, f / scale) for f in range(video_length)]).float()
    torch.testing.assert_close(model.temp_pos_embed[0], expected, rtol=0, atol=1e-6)


def test_temporal_pos_embed_for_17_frames_steps_by_a_third():
    model = LatteT2V(**{**TINY, "video_length": 17})
    torch.testing.assert_close(model.temp_pos_embed[0, 3], dense_sincos(16, 1.0).float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.temporal_pos_embed(20)[0, :17], model.temp_pos_embed[0])


def test_spatial_pos_embed_layout_w_first_and_interpolated():
    pos = sincos_2d(16, grid_h=4, grid_w=4, base_size=4, interpolation_scale=2)
    h, w = 1, 3  # token index h * W + w
    expected = torch.cat([dense_sincos(8, w / 2), dense_sincos(8, h / 2)]).float()
    torch.testing.assert_close(pos[h * 4 + w], expected, rtol=0, atol=1e-6)
    assert LatteT2V(**{**TINY, "sample_size": 128}).pos_embed.interpolation_scale == 2


# ---------------------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------------------

def test_17x256_latents_give_per_frame_token_grids():
    # 17 frames at 256^2 -> 4x8x8 causal VAE -> 5 x 32 x 32 latents -> 16 x 16 = 256 tokens per frame.
    model = tiny(sample_size=32, num_layers=1, video_length=5)
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen[name] = tuple(out.shape)
        return hook

    model.transformer_blocks[0].register_forward_hook(record("spatial"))
    model.temporal_transformer_blocks[0].register_forward_hook(record("temporal"))
    x, t, y = inputs(batch=2, frames=5, size=32)
    with torch.no_grad():
        out = model(x, t, y)
    assert seen == {"spatial": (2 * 5, 256, 16), "temporal": (2 * 256, 5, 16)}
    assert out.shape == (2, 8, 5, 32, 32)


def test_rejects_latents_not_divisible_by_patch():
    x, t, y = inputs(size=7)
    with pytest.raises(KinemaError, match="multiple of patch_size"):
        tiny()(x, t, y)


# ---------------------------------------------------------------------------------------------------------------
# Joint image-video frames
# ---------------------------------------------------------------------------------------------------------------

def test_image_frames_bypass_temporal_blocks():
    model = tiny(video_length=3)
    x, t, y = inputs(frames=5, caption_rows=3)  # 3 video frames + 2 images
    changed = x.clone()
    changed[:, :, 3:] += torch.randn_like(changed[:, :, 3:])
    with torch.no_grad():
        joint, joint_changed = model(x, t, y, use_image_num=2), model(changed, t, y, use_image_num=2)
        # Control: treated as a 5-frame video, the same change does leak into the first frames.
        video, video_changed = model(x, t, y[:, :1]), model(changed, t, y[:, :1])
    assert torch.equal(joint[:, :, :3], joint_changed[:, :, :3])
    assert not torch.allclose(joint[:, :, 3:], joint_changed[:, :, 3:])
    assert not torch.allclose(video[:, :, :3], video_changed[:, :, :3], atol=1e-4)


def test_image_frame_equals_spatial_only_pass_with_its_own_caption():
    model = tiny(video_length=3)
    x, t, y = inputs(frames=5, caption_rows=3)
    with torch.no_grad():
        joint = model(x, t, y, use_image_num=2)
        alone = model(x[:, :, 4:5], t, y[:, 2], enable_temporal_attentions=False)
    torch.testing.assert_close(joint[:, :, 4:5], alone, rtol=1e-5, atol=1e-6)


def test_image_mask_rows_are_per_image():
    model = tiny(video_length=3)
    x, t, y = inputs(frames=4, caption_rows=2)
    mask = torch.ones(2, 2, 6, dtype=torch.long)
    mask[:, 1, 3:] = 0  # the image's caption has 3 tokens
    noisy = y.clone()
    noisy[:, 1, 3:] += 5.0  # ... so changing its padding does nothing
    noisy_video = y.clone()
    noisy_video[:, 0, 3:] += 5.0  # while the video's caption uses all 6
    with torch.no_grad():
        base = model(x, t, y, mask, use_image_num=1)
        assert torch.equal(base, model(x, t, noisy, mask, use_image_num=1))
        assert not torch.allclose(base[:, :, :3], model(x, t, noisy_video, mask, use_image_num=1)[:, :, :3])


def test_fully_masked_caption_attends_uniformly_like_the_additive_bias():
    model = tiny()
    x, t, y = inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y, torch.zeros(2, 6)), model(x, t, y))


def test_no_caption_is_an_error_naming_the_empty_prompt():
    model = tiny()
    x, t, y = inputs()
    with pytest.raises(KinemaError, match=r"got no caption \(y=None\).*features of the empty prompt"):
        model(x, t, None)
    with pytest.raises(KinemaError, match="with no tokens"):
        model(x, t, y[:, :0])
    with pytest.raises(KinemaError, match="y=None"):
        model.model_inputs(None)


def test_bad_use_image_num_and_caption_shapes():
    model = tiny()
    x, t, y = inputs(frames=3, caption_rows=2)
    with pytest.raises(KinemaError, match="at least one video frame"):
        model(x, t, y, use_image_num=3)
    with pytest.raises(KinemaError, match="captions of shape"):
        model(x, t, y, use_image_num=2)  # needs 3 caption rows or 1


# ---------------------------------------------------------------------------------------------------------------
# Config, attention backends, checkpointing, saving
# ---------------------------------------------------------------------------------------------------------------

def test_math_backend_matches_sdpa():
    x, t, y = inputs()
    with torch.no_grad():
        torch.testing.assert_close(tiny(attention="math")(x, t, y), tiny()(x, t, y), rtol=1e-5, atol=1e-5)


def test_use_attention_backend_and_unknown_name():
    model = tiny()
    model.use_attention_backend("math")
    assert model.config.attention == "math" and model.temporal_transformer_blocks[1].attn1.backend == "math"
    with pytest.raises(KinemaError, match="sdpa"):
        tiny(attention="no-such-kernel")


def test_gradient_checkpointing_gives_the_same_gradients():
    x, t, y = inputs()
    grads = []
    for checkpointing in (False, True):
        model = tiny().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(x, t, y).square().mean().backward()
        grads.append(model.transformer_blocks[0].attn1.to_q.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_save_and_load_pretrained_round_trip(tmp_path):
    model = tiny(attention="math")
    model.save_pretrained(tmp_path)
    loaded = LatteT2V.from_pretrained(tmp_path).eval()
    assert loaded.config.attention == "math"
    x, t, y = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t, y), loaded(x, t, y))


def test_full_flavour_parameter_count():
    with torch.device("meta"):
        model = LatteT2V_XL_122()
    count = sum(p.numel() for p in model.parameters())
    per_spatial = sum(p.numel() for p in model.transformer_blocks[0].parameters())
    per_temporal = sum(p.numel() for p in model.temporal_transformer_blocks[0].parameters())
    assert (len(model.transformer_blocks), len(model.temporal_transformer_blocks)) == (28, 28)
    assert model.proj_out.out_features == 2 * 2 * 8
    assert per_spatial == 21_255_552 and per_temporal == 15_942_528  # spec: ~21.26 M and ~15.94 M
    assert count == 1_057_246_880
    assert abs(count - 1.057e9) / 1.057e9 < 0.01  # spec: ~1.057 B


def test_flavour_is_registered_as_a_model():
    from kinema.core import lookup

    model = lookup("model", "LatteT2V-XL/122")(num_layers=1, num_attention_heads=2, attention_head_dim=8,
                                              caption_channels=12, sample_size=8)
    assert isinstance(model, LatteT2V) and model.config.out_channels == 8


@pytest.mark.parametrize("size,layers,heads,head_dim", [("S", 12, 6, 64), ("B", 12, 12, 64), ("L", 24, 16, 64),
                                                        ("XL", 28, 16, 72)])
def test_flavours_come_in_dit_sizes(size, layers, heads, head_dim):
    from kinema.core import lookup

    with torch.device("meta"):
        model = lookup("model", f"LatteT2V-{size}/122")()
    c = model.config
    assert (c.num_layers, c.num_attention_heads, c.attention_head_dim) == (layers, heads, head_dim)
    assert (c.patch_size, c.out_channels, c.caption_channels) == (2, 8, 4096)
