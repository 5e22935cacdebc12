import pytest
import torch
from einops import rearrange

from kinema.core import KinemaError
from kinema.dit.pixart import PixArt
from kinema.dit.stdit import STDiT, STDiT_XL_2

# ---------------------------------------------------------------------------------------------
# upstream layout
# ---------------------------------------------------------------------------------------------


def test_xl2_state_dict_matches_upstream_names_and_shapes(upstream_shapes):
    with torch.device("meta"):
        model = STDiT_XL_2(input_size=(16, 32, 32))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = upstream_shapes["STDiT-XL/2"]
    assert set(shapes) - set(expected) == set()
    assert set(expected) - set(shapes) == set()
    assert shapes == expected
    assert len(shapes) == 550


def test_xl2_parameter_count_and_buffers():
    with torch.device("meta"):
        model = STDiT_XL_2(input_size=(16, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == 759_620_768
    without_temporal = sum(p.numel() for n, p in model.named_parameters() if "attn_temp" not in n)
    assert without_temporal == 610_856_096
    buffers = dict(model.named_buffers())
    assert set(buffers) == {"pos_embed", "pos_embed_temporal", "y_embedder.y_embedding"}
    assert "y_embedder.y_embedding" not in dict(model.named_parameters())


def test_init_zeroes_temporal_cross_and_final_projections(tiny):
    model = STDiT(input_size=(2, 4, 4), **tiny)
    for block in model.blocks:
        assert torch.count_nonzero(block.attn_temp.proj.weight) == 0
        assert torch.count_nonzero(block.cross_attn.proj.weight) == 0
        assert torch.count_nonzero(block.attn.proj.weight) > 0
    assert torch.count_nonzero(model.final_layer.linear.weight) == 0
    # xavier on the patch conv viewed as a Linear [out, in*pt*ph*pw]
    w = model.x_embedder.proj.weight
    bound = (6 / (w.shape[0] + w[0].numel())) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
    # a fresh model predicts zero
    y = torch.randn(1, 1, 6, 16)
    out = model.eval()(torch.randn(1, 4, 2, 4, 4), torch.tensor([3]), y)
    assert torch.count_nonzero(out) == 0


# ---------------------------------------------------------------------------------------------
# STDiT on one frame == the PixArt image model with the same weights
# ---------------------------------------------------------------------------------------------


def _stdit_from_pixart(pixart: PixArt, tiny) -> STDiT:
    size = pixart.config.input_size
    stdit = STDiT(input_size=(1, size, size), **tiny)
    state = {k: v for k, v in pixart.state_dict().items() if k != "pos_embed"}
    state["x_embedder.proj.weight"] = state["x_embedder.proj.weight"].unsqueeze(2)
    missing, unexpected = stdit.load_state_dict(state, strict=False)
    assert unexpected == []
    assert {k for k in missing if "attn_temp" not in k} == {"pos_embed", "pos_embed_temporal"}
    with torch.no_grad():  # temporal qkv random and non-zero, only the output projection stays zero
        for block in stdit.blocks:
            block.attn_temp.qkv.weight.normal_(0, 0.2)
            block.attn_temp.qkv.bias.normal_(0, 0.2)
    return stdit.eval()


def test_one_frame_stdit_equals_pixart_with_same_weights(tiny, randomize, captions):
    torch.manual_seed(0)
    pixart = randomize(PixArt(input_size=8, **tiny)).eval()
    stdit = _stdit_from_pixart(pixart, tiny)
    x = torch.randn(2, 4, 8, 8)
    t = torch.tensor([17, 640])
    y, mask = captions(2)

    image_out = pixart(x, t, y, mask)
    video_out = stdit(x.unsqueeze(2), t, y, mask)
    assert video_out.shape == (2, 8, 1, 8, 8)
    assert image_out.abs().mean() > 0.1
    torch.testing.assert_close(video_out.squeeze(2), image_out, atol=1e-5, rtol=1e-5)

    # the equality rests on the zero temporal projection: perturb it and it breaks
    with torch.no_grad():
        stdit.blocks[1].attn_temp.proj.weight.normal_(0, 0.2)
    assert (stdit(x.unsqueeze(2), t, y, mask).squeeze(2) - image_out).abs().max() > 1e-2


# ---------------------------------------------------------------------------------------------
# forward behaviour
# ---------------------------------------------------------------------------------------------


def _tiny_stdit(tiny, randomize, T=3, seed=0, **overrides):
    return randomize(STDiT(input_size=(T, 4, 6), **tiny, **overrides), seed=seed).eval()


def test_forward_shape_dtype_and_cfg_mask_rows(tiny, randomize, captions):
    model = _tiny_stdit(tiny, randomize)
    y, mask = captions(2)
    x = torch.randn(4, 4, 3, 4, 6)
    y4 = torch.cat([y, y])
    out = model(x, torch.tensor([1, 2, 3, 4]), y4, mask)  # 2 mask rows for a CFG batch of 4
    assert out.shape == (4, 8, 3, 4, 6) and out.dtype == torch.float32
    torch.testing.assert_close(out, model(x, torch.tensor([1, 2, 3, 4]), y4, torch.cat([mask, mask])))


def test_temporal_attention_mixes_frames_only_when_enabled(tiny, randomize, captions):
    model = _tiny_stdit(tiny, randomize)
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 6)
    x2 = x.clone()
    x2[:, :, 2] += 1.0  # change the last frame only
    out, out2 = model(x, torch.tensor([5]), y, mask), model(x2, torch.tensor([5]), y, mask)
    assert (out[:, :, 0] - out2[:, :, 0]).abs().max() > 1e-3
    for block in model.blocks:
        torch.nn.init.zeros_(block.attn_temp.proj.weight)
        torch.nn.init.zeros_(block.attn_temp.proj.bias)
    out, out2 = model(x, torch.tensor([5]), y, mask), model(x2, torch.tensor([5]), y, mask)
    torch.testing.assert_close(out[:, :, 0], out2[:, :, 0])


def test_x_mask_given_frames_get_t0_modulation(tiny, randomize, captions):
    """With the temporal projection at zero frames are independent, so a given frame (x_mask False)
    at timestep t must come out exactly as that frame does when the whole clip is at t = 0."""
    model = randomize(STDiT(input_size=(3, 4, 4), **tiny), keep_zero=("attn_temp.proj",)).eval()
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 4, 4)
    t = torch.tensor([700, 300])
    x_mask = torch.tensor([[True, False, True], [False, False, True]])
    mixed = model(x, t, y, mask, x_mask=x_mask)
    at_t = model(x, t, y, mask)
    at_zero = model(x, torch.zeros_like(t), y, mask)
    expected = torch.where(x_mask[:, None, :, None, None], at_t, at_zero)
    torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=1e-5)
    assert (at_t - at_zero).abs().max() > 1e-2  # the timestep matters, so the test can fail
    # an all-True mask is the plain forward
    torch.testing.assert_close(model(x, t, y, mask, x_mask=torch.ones(2, 3, dtype=torch.bool)), at_t)


def test_x_mask_temporal_branch_keeps_gate_at_t(tiny, randomize, captions):
    """v1.1 STDiT: the temporal branch is gated by gate_msa at t for every frame, given or not."""
    model = _tiny_stdit(tiny, randomize, T=3)
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 6)
    all_given = torch.zeros(1, 3, dtype=torch.bool)
    out_a = model(x, torch.tensor([900]), y, mask, x_mask=all_given)
    out_b = model(x, torch.tensor([0]), y, mask, x_mask=all_given)
    assert (out_a - out_b).abs().max() > 1e-3  # depends on t through the temporal gate only
    for block in model.blocks:
        torch.nn.init.zeros_(block.attn_temp.proj.weight)
        torch.nn.init.zeros_(block.attn_temp.proj.bias)
    out_a = model(x, torch.tensor([900]), y, mask, x_mask=all_given)
    out_b = model(x, torch.tensor([0]), y, mask, x_mask=all_given)
    torch.testing.assert_close(out_a, out_b)


def test_x_mask_final_layer_as_released(tiny, randomize, captions, released_final_layer):
    """final_layer_legacy: given frames go through the released double-norm formula (Open-Sora 1.1's STDiT
    shares STDiT2's final layer); a fresh STDiT uses the single norm."""
    model = _tiny_stdit(tiny, randomize, T=3, final_layer_legacy=True)
    fresh = _tiny_stdit(tiny, randomize, T=3)
    seen = {}
    model.final_layer.register_forward_pre_hook(lambda m, args: seen.update(args=args))
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    x_mask = torch.tensor([[True, False, True], [False, False, True]])
    with torch.no_grad():
        out = model(x, torch.tensor([700, 300]), y, mask, x_mask=x_mask)
        out_fresh = fresh(x, torch.tensor([700, 300]), y, mask, x_mask=x_mask)
        tokens, t, t0, _ = seen["args"]
        fl = model.final_layer
        dense = released_final_layer(tokens, t, t0, x_mask, fl.scale_shift_table, fl.linear.weight, fl.linear.bias,
                                     double_norm=True)
    expected = rearrange(dense, "B T (H W) (ph pw C) -> B C T (H ph) (W pw)", H=2, W=3, ph=2, pw=2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    frames = x_mask[:, None, :, None, None].expand_as(out)
    torch.testing.assert_close(out_fresh[frames], out[frames])
    assert (out_fresh - out)[~frames].abs().max() > 1e-3


def test_masked_out_caption_tokens_have_no_effect(tiny, randomize, captions):
    model = _tiny_stdit(tiny, randomize)
    y, mask = captions(2, valid=(2, 5))
    x = torch.randn(2, 4, 3, 4, 6)
    t = torch.tensor([10, 20])
    out = model(x, t, y, mask)
    y2 = y.clone()
    y2[0, :, 2:] = torch.randn_like(y2[0, :, 2:]) * 5
    y2[1, :, 5:] = torch.randn_like(y2[1, :, 5:]) * 5
    torch.testing.assert_close(model(x, t, y2, mask), out, atol=1e-6, rtol=1e-6)
    # and each sample equals running it alone on just its valid tokens (the packed upstream layout)
    for b, n in enumerate((2, 5)):
        alone = model(x[b : b + 1], t[b : b + 1], y[b : b + 1, :, :n])
        torch.testing.assert_close(alone, out[b : b + 1], atol=1e-5, rtol=1e-5)
    # valid tokens do matter
    y3 = y.clone()
    y3[0, :, 0] += 1.0
    assert (model(x, t, y3, mask)[0] - out[0]).abs().max() > 1e-3


def test_rejects_wrong_input_size_and_bad_masks(tiny):
    model = STDiT(input_size=(2, 4, 4), **tiny).eval()
    y = torch.randn(1, 1, 6, 16)
    with pytest.raises(KinemaError, match="input_size"):
        model(torch.randn(1, 4, 3, 4, 4), torch.tensor([1]), y)
    with pytest.raises(KinemaError, match="x_mask"):
        model(torch.randn(1, 4, 2, 4, 4), torch.tensor([1]), y, x_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(KinemaError, match="no valid token"):
        model(torch.randn(1, 4, 2, 4, 4), torch.tensor([1]), y, torch.zeros(1, 6))
    with pytest.raises(KinemaError, match="caption features"):
        model(torch.randn(1, 4, 2, 4, 4), torch.tensor([1]), torch.randn(1, 6, 16))
    with pytest.raises(KinemaError, match="multiple of patch_size"):
        STDiT(input_size=(2, 5, 4), **tiny)


def test_save_and_load_pretrained_roundtrip(tmp_path, tiny, randomize, captions):
    model = _tiny_stdit(tiny, randomize)
    model.save_pretrained(tmp_path / "stdit")
    assert (tmp_path / "stdit" / "diffusion_pytorch_model.safetensors").exists()
    loaded = STDiT.from_pretrained(tmp_path / "stdit").eval()
    assert tuple(loaded.config.input_size) == (3, 4, 6)
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 6)
    torch.testing.assert_close(loaded(x, torch.tensor([9]), y, mask), model(x, torch.tensor([9]), y, mask))
