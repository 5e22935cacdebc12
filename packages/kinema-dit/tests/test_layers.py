import pytest
import torch

from kinema.core import KinemaError, UnknownNameError
from kinema.dit.layers import (
    Attention,
    BlockInputs,
    MultiHeadCrossAttention,
    PatchEmbed3D,
    RMSNorm,
    T2IFinalLayer,
    caption_mask,
    check_attention_backend,
    frame_modulation,
    run_blocks,
    t2i_modulate,
    unpatchify,
)
from kinema.dit.pos_embed import RotaryEmbedding


def dense_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v in float64, written out."""
    scores = (q.double() @ k.double().transpose(-2, -1)) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v.double()).float()


def test_t2i_modulate_formula():
    x, shift, scale = torch.randn(3, 4), torch.randn(4), torch.randn(4)
    torch.testing.assert_close(t2i_modulate(x, shift, scale), x + x * scale + shift)


def test_rmsnorm_formula():
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 8))
    x = torch.randn(5, 8)
    expected = norm.weight * x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)


# ---------------------------------------------------------------------------------------------
# self-attention
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("qk_norm,use_rope", [(False, False), (True, False), (True, True)])
def test_self_attention_sdpa_and_math_agree_with_dense_reference(qk_norm, use_rope):
    torch.manual_seed(0)
    rope = RotaryEmbedding(8) if use_rope else None
    layer = Attention(32, 4, qk_norm=qk_norm, rope=None if rope is None else rope.rotate_queries_or_keys)
    x = torch.randn(3, 10, 32)
    outs = {}
    for backend in ("sdpa", "math"):
        layer.backend = backend
        outs[backend] = layer(x)
    torch.testing.assert_close(outs["sdpa"], outs["math"], atol=1e-5, rtol=1e-5)

    # independent reference from the layer's own weights
    q, k, v = layer.qkv(x).view(3, 10, 3, 4, 8).permute(2, 0, 3, 1, 4)
    if rope is not None:
        q, k = rope(q), rope(k)
    q, k = layer.q_norm(q), layer.k_norm(k)
    ref = layer.proj(dense_attention(q, k, v).transpose(1, 2).reshape(3, 10, 32))
    torch.testing.assert_close(outs["math"], ref, atol=1e-5, rtol=1e-5)


def test_rope_order_flag_changes_attention_with_nonuniform_norm_weights():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    layer = Attention(32, 4, qk_norm=True, rope=rope.rotate_queries_or_keys, rope_before_norm=True)
    with torch.no_grad():
        layer.q_norm.weight.copy_(torch.linspace(0.2, 2.0, 8))
        layer.k_norm.weight.copy_(torch.linspace(2.0, 0.2, 8))
    x = torch.randn(2, 6, 32)
    legacy = layer(x)
    layer.rope_before_norm = False
    assert (layer(x) - legacy).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------
# cross-attention
# ---------------------------------------------------------------------------------------------


def _cross_inputs(valid=(2, 5, 7)):
    torch.manual_seed(1)
    B, N, L, C = len(valid), 9, 7, 32
    x, cond = torch.randn(B, N, C), torch.randn(B, L, C)
    mask = caption_mask(torch.tensor([[1] * n + [0] * (L - n) for n in valid]), B, L)
    return x, cond, mask


def test_cross_attention_backends_agree_with_ragged_masks():
    layer = MultiHeadCrossAttention(32, 4)
    x, cond, mask = _cross_inputs()
    outs = {}
    for backend in ("sdpa", "math"):
        layer.backend = backend
        outs[backend] = layer(x, cond, mask)
    torch.testing.assert_close(outs["sdpa"], outs["math"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_cross_attention_each_sample_sees_only_its_valid_tokens(backend):
    layer = MultiHeadCrossAttention(32, 4, backend=backend)
    x, cond, mask = _cross_inputs()
    out = layer(x, cond, mask)
    # reference: each sample alone with its valid tokens only (the packed block-diagonal layout)
    for b, n in enumerate((2, 5, 7)):
        torch.testing.assert_close(out[b : b + 1], layer(x[b : b + 1], cond[b : b + 1, :n]), atol=1e-5, rtol=1e-5)
    # padding content has no effect
    cond2 = cond.clone()
    cond2[0, 2:] = 100 * torch.randn_like(cond2[0, 2:])
    cond2[1, 5:] = -50.0
    torch.testing.assert_close(layer(x, cond2, mask), out, atol=1e-6, rtol=1e-6)
    # ... but without the mask it does
    assert (layer(x, cond2) - layer(x, cond)).abs().max() > 1e-2


def test_caption_mask_repeats_for_cfg_and_rejects_bad_masks():
    m = caption_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]), 4, 3)
    assert m.dtype == torch.bool and m.shape == (4, 3)
    torch.testing.assert_close(m[2:], m[:2])
    assert caption_mask(None, 4, 3) is None
    with pytest.raises(KinemaError, match="rows for a batch"):
        caption_mask(torch.ones(3, 3), 4, 3)
    with pytest.raises(KinemaError, match=r"\[batch, 3\]"):
        caption_mask(torch.ones(4, 5), 4, 3)
    with pytest.raises(KinemaError, match="no valid token"):
        caption_mask(torch.tensor([[1, 0, 0], [0, 0, 0]]), 2, 3)


# ---------------------------------------------------------------------------------------------
# modulation, patches, output head
# ---------------------------------------------------------------------------------------------


def test_frame_modulation_selects_t0_for_given_frames():
    table = torch.randn(3, 4)
    t_mod, t0_mod = torch.randn(2, 12), torch.randn(2, 12)
    x_mask = torch.tensor([[True, False], [False, True]])
    shift, scale, gate = frame_modulation(table, t_mod, t0_mod, x_mask)
    assert gate.shape == (2, 2, 1, 4)
    normal = table[None] + t_mod.view(2, 3, 4)
    zero = table[None] + t0_mod.view(2, 3, 4)
    torch.testing.assert_close(gate[0, 0, 0], normal[0, 2])
    torch.testing.assert_close(gate[0, 1, 0], zero[0, 2])
    torch.testing.assert_close(shift[1, 0, 0], zero[1, 0])
    torch.testing.assert_close(scale[1, 1, 0], normal[1, 1])
    # without a mask: one vector per sample, broadcast over frames; [B, C] inputs broadcast over the table rows
    shift, scale = frame_modulation(torch.randn(2, 4), torch.randn(2, 4))
    assert shift.shape == (2, 1, 1, 4)


# ---------------------------------------------------------------------------------------------
# block inputs and the block loop
# ---------------------------------------------------------------------------------------------


def test_block_inputs_map_only_the_per_frame_fields():
    y, t_mod, t0_mod = torch.randn(2, 6, 8), torch.randn(2, 48), torch.randn(2, 48)
    x_mask, tpe = torch.tensor([[True, False, True, True]] * 2), torch.randn(1, 4, 8)
    inputs = BlockInputs(y, None, t_mod, t0_mod, x_mask=x_mask, tpe=tpe)
    seen = []

    def last_two_frames(value, axis):
        seen.append(axis)
        return value.narrow(axis, 2, 2)

    local = inputs.map_frames(last_two_frames)
    assert seen == [1, 1]
    assert torch.equal(local.x_mask, x_mask[:, 2:]) and torch.equal(local.tpe, tpe[:, 2:])
    assert local.y is y and local.t_mod is t_mod and local.t0_mod is t0_mod  # the rest is shared, not copied
    assert inputs.x_mask is x_mask  # the original is left as it was
    assert BlockInputs(y, None, t_mod).map_frames(last_two_frames).x_mask is None and len(seen) == 2


class _Model(torch.nn.Module):
    gradient_checkpointing = False

    def _gradient_checkpointing_func(self, block, *args):
        self.checkpointed.append(block)
        return block(*args)


def test_run_blocks_checkpoints_each_block_only_when_enabled_and_grad_is_on():
    model, blocks = _Model(), [lambda x, k: x * k, lambda x, k: x + k]
    model.checkpointed = []
    assert run_blocks(model, blocks, torch.tensor(2.0), 3.0) == 9.0 and model.checkpointed == []
    model.gradient_checkpointing = True
    assert run_blocks(model, blocks, torch.tensor(2.0), 3.0) == 9.0 and model.checkpointed == blocks
    with torch.no_grad():
        run_blocks(model, blocks, torch.tensor(2.0), 3.0)
    assert len(model.checkpointed) == 2


def test_patch_embed_pads_right_then_convolves():
    embed = PatchEmbed3D((2, 2, 2), in_chans=3, embed_dim=5)
    x = torch.randn(1, 3, 3, 5, 4)
    tokens = embed(x)
    assert tokens.shape == (1, 2 * 3 * 2, 5)
    padded = torch.zeros(1, 3, 4, 6, 4)
    padded[:, :, :3, :5, :4] = x
    expected = embed.proj(padded).flatten(2).transpose(1, 2)  # token index t*H*W + h*W + w
    torch.testing.assert_close(tokens, expected)
    torch.testing.assert_close(tokens[0, 1 * 2 + 1], embed.proj(padded)[0, :, 0, 1, 1])


def test_unpatchify_inverts_patch_layout():
    B, C, (T, H, W), p = 2, 3, (2, 3, 4), (1, 2, 2)
    video = torch.randn(B, C, T, H * 2, W * 2)
    # patchify by hand: token (t, h, w) holds pixels (ph, pw, c) in that order
    tokens = video.view(B, C, T, 1, H, 2, W, 2).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, T, H * W, 4 * C)
    torch.testing.assert_close(unpatchify(tokens, (T, H, W), p, C), video)


def test_final_layer_modulates_with_raw_t():
    layer = T2IFinalLayer(8, 4, 2)
    torch.nn.init.normal_(layer.linear.weight)
    x, t = torch.randn(2, 3, 5, 8), torch.randn(2, 8)
    shift, scale = (layer.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
    expected = layer.linear(t2i_modulate(layer.norm_final(x), shift[:, None], scale[:, None]))
    torch.testing.assert_close(layer(x, t), expected)


@pytest.mark.parametrize("legacy", [True, False])
def test_final_layer_given_frames_released_or_single_norm(legacy, released_final_layer):
    torch.manual_seed(0)
    layer = T2IFinalLayer(8, 4, 2, legacy=legacy)
    torch.nn.init.normal_(layer.linear.weight)
    x, t, t0 = torch.randn(2, 3, 5, 8) * 3 + 1, torch.randn(2, 8), torch.randn(2, 8)
    x_mask = torch.tensor([[True, False, True], [False, False, True]])
    args = (x, t, t0, x_mask, layer.scale_shift_table, layer.linear.weight, layer.linear.bias)
    out = layer(x, t, t0, x_mask)
    torch.testing.assert_close(out, released_final_layer(*args, double_norm=legacy), atol=1e-5, rtol=1e-5)
    other = released_final_layer(*args, double_norm=not legacy)
    assert (out - other)[~x_mask].abs().amax(-1).min() > 1e-3  # every given token differs between the formulas
    torch.testing.assert_close(out[x_mask], other[x_mask], atol=1e-5, rtol=1e-5)  # denoised frames do not
    all_denoised = torch.ones(2, 3, dtype=torch.bool)  # without x_mask both modes are the plain formula
    torch.testing.assert_close(layer(x, t), released_final_layer(*args[:3], all_denoised, *args[4:], legacy),
                               atol=1e-5, rtol=1e-5)
    assert T2IFinalLayer(8, 4, 2).legacy is False  # a fresh layer keeps the single norm


def test_unknown_attention_backend_lists_the_names():
    assert check_attention_backend("math") == "math"
    with pytest.raises(UnknownNameError) as err:
        check_attention_backend("no-such-kernel")
    assert "sdpa" in str(err.value) and "math" in str(err.value)
