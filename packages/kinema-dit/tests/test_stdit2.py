import math

import pytest
import torch
from einops import rearrange

from kinema.core import KinemaError
from kinema.dit.contract import SizeConditions
from kinema.dit.pos_embed import get_2d_sincos_pos_embed
from kinema.dit.stdit2 import STDiT2, STDiT2_XL_2


def _sizes(T, H, W, batch=2):
    """Size conditions as the pipeline passes them: pixel height/width of an /8 VAE, ar = H/W, fps."""
    return dict(num_frames=torch.full((batch,), float(T)), height=torch.full((batch,), H * 8.0),
                width=torch.full((batch,), W * 8.0), ar=torch.full((batch,), H / W), fps=torch.full((batch,), 24.0))


def _tiny_stdit2(tiny, randomize, seed=0, keep_zero=(), **overrides):
    cfg = {**tiny, "qk_norm": True, "input_sq_size": 64, **overrides}
    return randomize(STDiT2(**cfg), seed=seed, keep_zero=keep_zero).eval()


# ---------------------------------------------------------------------------------------------
# upstream layout
# ---------------------------------------------------------------------------------------------


def test_xl2_state_dict_matches_upstream_names_and_shapes(upstream_shapes):
    # the upstream table was read with the class default of 120 caption tokens
    with torch.device("meta"):
        model = STDiT2_XL_2(model_max_length=120)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = upstream_shapes["STDiT2-XL/2"]
    assert set(shapes) - set(expected) == set()
    assert set(expected) - set(shapes) == set()
    assert shapes == expected
    assert len(shapes) == 707


def test_xl2_parameter_count_flavour_defaults_and_rope_freqs():
    with torch.device("meta"):
        model = STDiT2_XL_2()
    assert sum(p.numel() for p in model.parameters()) == 767_452_100
    assert model.y_embedder.y_embedding.shape == (200, 4096)  # the flavour uses 200 T5 tokens
    assert model.config.input_sq_size == 512 and model.config.qk_norm
    assert model.rope.freqs.shape == (36,) and not model.rope.freqs.requires_grad
    assert set(dict(model.named_buffers())) == {"y_embedder.y_embedding"}  # the spatial table is per call


def test_init_zeroes_temporal_cross_and_final_projections(tiny):
    model = STDiT2(**tiny)
    for block in model.blocks:
        assert torch.count_nonzero(block.attn_temp.proj.weight) == 0
        assert torch.count_nonzero(block.cross_attn.proj.weight) == 0
    assert torch.count_nonzero(model.final_layer.linear.weight) == 0
    assert torch.count_nonzero(model.t_block_temp[1].weight) > 0


# ---------------------------------------------------------------------------------------------
# dynamic sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 8, 6), (5, 7, 9), (2, 5, 3)])
def test_variable_shapes_output_matches_input(tiny, randomize, captions, shape):
    model = _tiny_stdit2(tiny, randomize)
    y, mask = captions(2)
    x = torch.randn(2, 4, *shape)
    out = model(x, torch.tensor([3, 800]), y, mask, **_sizes(*shape))
    assert out.shape == (2, 8, *shape)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_odd_sizes_are_zero_padded_then_cropped(tiny, randomize, captions):
    """An odd-sized latent gives exactly the crop of the output for the same latent zero-padded to
    patch multiples (with the same pixel-size conditions)."""
    model = _tiny_stdit2(tiny, randomize)
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 5, 7)
    sizes = _sizes(3, 5, 7)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    out = model(x, torch.tensor([3, 800]), y, mask, **sizes)
    out_padded = model(padded, torch.tensor([3, 800]), y, mask, **sizes)
    assert out_padded.shape[-2:] == (6, 8)
    torch.testing.assert_close(out, out_padded[..., :5, :7])


def test_position_table_scaled_to_pixel_size(tiny, randomize, captions):
    """The spatial table added after patch embedding is the 2D sincos with
    scale = sqrt(H_px * W_px) / input_sq_size and base_size = round(sqrt(S))."""
    model = _tiny_stdit2(tiny, randomize)
    seen = {}
    model.x_embedder.register_forward_hook(lambda m, i, o: seen.update(tokens=o))
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    y, mask = captions(1)
    x = torch.randn(1, 4, 2, 6, 10)
    sizes = dict(num_frames=2, height=240.0, width=426.0, ar=240 / 426, fps=24)
    model(x, torch.tensor([5]), y, mask, **sizes)
    grid_h, grid_w = 3, 5
    scale = math.sqrt(240 * 426) / 64
    table = get_2d_sincos_pos_embed(48, (grid_h, grid_w), scale=scale, base_size=round(math.sqrt(15)))
    added = seen["x"] - seen["tokens"].view(1, 2, 15, 48)
    torch.testing.assert_close(added, table.expand(1, 2, 15, 48), atol=1e-6, rtol=1e-6)


def test_size_conditions_change_the_output(tiny, randomize, captions):
    model = _tiny_stdit2(tiny, randomize)
    y, mask = captions(1)
    x = torch.randn(1, 4, 2, 4, 4)
    base = model(x, torch.tensor([5]), y, mask, **_sizes(2, 4, 4, 1))
    for key, value in [("fps", 8.0), ("ar", 0.5), ("num_frames", 16.0)]:
        changed = model(x, torch.tensor([5]), y, mask, **{**_sizes(2, 4, 4, 1), key: torch.tensor([value])})
        assert (changed - base).abs().max() > 1e-4, key


def test_missing_size_condition_is_a_clear_error(tiny):
    model = STDiT2(**tiny).eval()
    with pytest.raises(KinemaError, match="needs fps"):
        model(torch.randn(1, 4, 2, 4, 4), torch.tensor([1]), torch.randn(1, 1, 6, 16),
              num_frames=2, height=32, width=32, ar=1.0)


# ---------------------------------------------------------------------------------------------
# x_mask: given frames are modulated as at t = 0
# ---------------------------------------------------------------------------------------------


def test_x_mask_given_frames_get_t0_modulation(tiny, randomize, captions):
    """With the temporal projections at zero, frames are computed independently, so each frame of a
    mixed x_mask run must equal the all-denoised run (x_mask True) or the all-given run (False)."""
    model = _tiny_stdit2(tiny, randomize, keep_zero=("attn_temp.proj",))
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 4, 4)
    t = torch.tensor([700, 300])
    sizes = _sizes(3, 4, 4)
    x_mask = torch.tensor([[True, False, True], [False, False, True]])
    mixed = model(x, t, y, mask, x_mask=x_mask, **sizes)
    denoised = model(x, t, y, mask, **sizes)
    given = model(x, t, y, mask, x_mask=torch.zeros(2, 3, dtype=torch.bool), **sizes)
    torch.testing.assert_close(mixed, torch.where(x_mask[:, None, :, None, None], denoised, given))
    assert (denoised - given).abs().max() > 1e-2
    # given frames only see t = 0: their output does not depend on the timestep at all
    given_other_t = model(x, torch.tensor([5, 999]), y, mask, x_mask=torch.zeros(2, 3, dtype=torch.bool), **sizes)
    torch.testing.assert_close(given_other_t, given)


def test_x_mask_final_layer_asymmetry(tiny, randomize, captions):
    """Given frames are modulated by t0 + size conditions in the final layer, denoised frames by the
    bare t: with the size embedders' outputs at zero, 'all given' equals a plain run at t = 0."""
    model = _tiny_stdit2(tiny, randomize, keep_zero=("csize_embedder.mlp.2", "ar_embedder.mlp.2"))
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 4, 4)
    sizes = _sizes(3, 4, 4)
    all_given = torch.zeros(2, 3, dtype=torch.bool)
    given = model(x, torch.tensor([700, 300]), y, mask, x_mask=all_given, **sizes)
    plain_t0 = model(x, torch.tensor([0, 0]), y, mask, **sizes)
    torch.testing.assert_close(given, plain_t0)
    # with non-zero size conditions the two differ (the size info enters the final layer only via t0)
    model = _tiny_stdit2(tiny, randomize)
    given = model(x, torch.tensor([700, 300]), y, mask, x_mask=all_given, **sizes)
    plain_t0 = model(x, torch.tensor([0, 0]), y, mask, **sizes)
    assert (given - plain_t0).abs().max() > 1e-3


@pytest.mark.parametrize("legacy", [True, False])
def test_x_mask_whole_model_final_layer_released_or_single_norm(tiny, randomize, captions, released_final_layer,
                                                                 legacy):
    """The model's output is the final-layer formula (double norm for given frames as released, or the single
    norm) applied to the tokens and embeddings the final layer receives, unpatchified and cropped."""
    model = _tiny_stdit2(tiny, randomize, final_layer_legacy=legacy)
    seen = {}
    model.final_layer.register_forward_pre_hook(lambda m, args: seen.update(args=args))
    y, mask = captions(2)
    x = torch.randn(2, 4, 3, 5, 6, generator=torch.Generator().manual_seed(0))  # H 5: padded to 6, cropped back
    x_mask = torch.tensor([[False, True, True], [False, False, True]])
    with torch.no_grad():
        out = model(x, torch.tensor([700, 300]), y, mask, x_mask=x_mask, **_sizes(3, 5, 6))
        tokens, t, t0, _ = seen["args"]
        fl = model.final_layer
        dense = released_final_layer(tokens, t, t0, x_mask, fl.scale_shift_table, fl.linear.weight, fl.linear.bias,
                                     double_norm=legacy)
    expected = rearrange(dense, "B T (H W) (ph pw C) -> B C T (H ph) (W pw)", H=3, W=3, ph=2, pw=2)[:, :, :, :5]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the other mode, same weights: the same denoised frames, other given frames
    other = _tiny_stdit2(tiny, randomize, final_layer_legacy=not legacy)
    with torch.no_grad():
        out_other = other(x, torch.tensor([700, 300]), y, mask, x_mask=x_mask, **_sizes(3, 5, 6))
    frames = x_mask[:, None, :, None, None].expand_as(out)
    torch.testing.assert_close(out_other[frames], out[frames])
    assert (out_other - out)[~frames].abs().max() > 1e-3
    assert not STDiT2(**tiny).config.final_layer_legacy  # fresh models keep the single norm


# ---------------------------------------------------------------------------------------------
# size conditions of n prompts for a guided batch of k*n
# ---------------------------------------------------------------------------------------------


def test_size_conditions_of_n_rows_are_tiled_over_a_2n_batch(tiny, randomize, captions):
    """As upstream's sampler: sizes of the n prompts for the 2n batch [cond; uncond], repeated as a block."""
    model = _tiny_stdit2(tiny, randomize)
    y, mask = captions(4)
    x, t = torch.randn(4, 4, 3, 4, 6, generator=torch.Generator().manual_seed(0)), torch.tensor([5, 300, 5, 300])
    n_rows = dict(num_frames=torch.tensor([3.0, 9.0]), height=torch.tensor([32.0, 64.0]),
                  width=torch.tensor([48.0, 40.0]), ar=torch.tensor([32 / 48, 64 / 40]), fps=torch.tensor([24.0, 8.0]))
    with torch.no_grad():
        out = model(x, t, y, mask, **n_rows)
        explicit = model(x, t, y, mask, **{k: torch.cat([v, v]) for k, v in n_rows.items()})
        interleaved = model(x, t, y, mask, **{k: v.repeat_interleave(2) for k, v in n_rows.items()})
        via_contract = model(x, t, **model.model_inputs(y, mask, sizes=SizeConditions(**n_rows)))
    torch.testing.assert_close(out, explicit)
    torch.testing.assert_close(via_contract, explicit)
    assert (out - interleaved).abs().max() > 1e-3  # the order matters, and it is the tiled one
    with pytest.raises(KinemaError, match="fps has 3 values for a batch of 4"):
        model(x, t, y, mask, **{**n_rows, "fps": torch.tensor([24.0, 8.0, 8.0])})
    with pytest.raises(KinemaError, match="fps has 3 values for a batch of 4"):
        model.model_inputs(y, mask, sizes=SizeConditions(**{**n_rows, "fps": torch.tensor([24.0, 8.0, 8.0])}))


# ---------------------------------------------------------------------------------------------
# RoPE / QK-norm order and temporal mixing
# ---------------------------------------------------------------------------------------------


def test_qk_norm_legacy_flag_changes_results(tiny, randomize, captions):
    """rope-then-norm (v1.1) vs norm-then-rope. A rotation keeps the RMS of the head vector, so the
    two orders differ only through non-uniform RMSNorm weights, which trained models have."""
    y, mask = captions(1)
    x = torch.randn(1, 4, 4, 4, 4)
    sizes = _sizes(4, 4, 4, 1)
    legacy = _tiny_stdit2(tiny, randomize, qk_norm_legacy=True)
    fixed = _tiny_stdit2(tiny, randomize, qk_norm_legacy=False)
    fixed.load_state_dict(legacy.state_dict())
    with torch.no_grad():  # RMSNorm weights near 1, not uniform
        for model in (legacy, fixed):
            for name, p in model.named_parameters():
                if "norm.weight" in name:
                    p.copy_(1 + torch.linspace(-0.5, 0.5, p.numel()))
    out_legacy = legacy(x, torch.tensor([5]), y, mask, **sizes)
    out_fixed = fixed(x, torch.tensor([5]), y, mask, **sizes)
    assert (out_legacy - out_fixed).abs().max() > 1e-4
    # with uniform norm weights the orders agree (a rotation commutes with RMS normalisation)
    with torch.no_grad():
        for model in (legacy, fixed):
            for name, p in model.named_parameters():
                if "norm.weight" in name:
                    p.fill_(1.3)
    torch.testing.assert_close(
        legacy(x, torch.tensor([5]), y, mask, **sizes), fixed(x, torch.tensor([5]), y, mask, **sizes)
    )


def test_temporal_rope_breaks_frame_permutation_symmetry(tiny, randomize, captions):
    """Without RoPE, temporal attention is permutation-equivariant over frames (no temporal sincos in
    STDiT2); with it, reversing the frames does not just reverse the output."""
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sizes = _sizes(3, 4, 4, 1)
    for no_rope in (True, False):
        model = _tiny_stdit2(tiny, randomize, no_temporal_pos_emb=no_rope)
        out = model(x, torch.tensor([5]), y, mask, **sizes)
        out_rev = model(x.flip(2), torch.tensor([5]), y, mask, **sizes).flip(2)
        if no_rope:
            torch.testing.assert_close(out_rev, out, atol=1e-5, rtol=1e-5)
        else:
            assert (out_rev - out).abs().max() > 1e-3


def test_no_temporal_pos_emb_ignored_as_released_or_honoured(tiny, randomize, captions):
    """Released: the flag is stored and RoPE still applied (the output equals a model with the flag off);
    honoured (a fresh model's default): no RoPE, so reversing the frames just reverses the output."""
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sizes = _sizes(3, 4, 4, 1)
    with_rope = _tiny_stdit2(tiny, randomize)
    released = _tiny_stdit2(tiny, randomize, no_temporal_pos_emb=True, no_temporal_pos_emb_legacy=True)
    honoured = _tiny_stdit2(tiny, randomize, no_temporal_pos_emb=True)
    with torch.no_grad():
        out_rope, out_released, out_honoured = (m(x, torch.tensor([5]), y, mask, **sizes)
                                                for m in (with_rope, released, honoured))
        out_honoured_rev = honoured(x.flip(2), torch.tensor([5]), y, mask, **sizes).flip(2)
    torch.testing.assert_close(out_released, out_rope)
    assert (out_honoured - out_rope).abs().max() > 1e-4  # small: tiny random weights attend almost uniformly
    torch.testing.assert_close(out_honoured_rev, out_honoured, atol=1e-5, rtol=1e-5)


def test_save_and_load_pretrained_roundtrip(tmp_path, tiny, randomize, captions):
    model = _tiny_stdit2(tiny, randomize)
    model.save_pretrained(tmp_path / "stdit2")
    loaded = STDiT2.from_pretrained(tmp_path / "stdit2").eval()
    y, mask = captions(1)
    x = torch.randn(1, 4, 2, 6, 4)
    sizes = _sizes(2, 6, 4, 1)
    torch.testing.assert_close(
        loaded(x, torch.tensor([9]), y, mask, **sizes), model(x, torch.tensor([9]), y, mask, **sizes)
    )
