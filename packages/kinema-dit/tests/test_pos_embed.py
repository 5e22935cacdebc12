import math

import pytest
import torch

from kinema.dit.pos_embed import (
    RotaryEmbedding,
    get_1d_sincos_pos_embed,
    get_2d_sincos_pos_embed,
    position_embedding_2d,
    rotate_half,
)


def sincos_reference(dim: int, pos: float) -> list[float]:
    """Scalar formula: [sin(p w_0) .. sin(p w_{D/2-1}), cos(p w_0) .. cos(p w_{D/2-1})], w_i = 10000^(-2i/D)."""
    omegas = [10000 ** (-i / (dim / 2)) for i in range(dim // 2)]
    return [math.sin(pos * w) for w in omegas] + [math.cos(pos * w) for w in omegas]


def test_1d_table_is_sin_first_formula():
    table = get_1d_sincos_pos_embed(8, 5)
    assert table.shape == (5, 8) and table.dtype == torch.float32
    for p in range(5):
        torch.testing.assert_close(table[p], torch.tensor(sincos_reference(8, p)))
    assert torch.all(table[0, :4] == 0) and torch.all(table[0, 4:] == 1)  # sin(0)=0 first, cos(0)=1 second


def test_1d_time_scale_divides_positions():
    table = get_1d_sincos_pos_embed(8, 4, scale=2 / 3)
    for p in range(4):
        torch.testing.assert_close(table[p], torch.tensor(sincos_reference(8, p * 1.5)))


def test_2d_table_puts_w_coordinate_first_row_major():
    H, W, D = 3, 5, 16
    table = get_2d_sincos_pos_embed(D, (H, W))
    assert table.shape == (H * W, D)
    for h in range(H):
        for w in range(W):
            expected = sincos_reference(D // 2, w) + sincos_reference(D // 2, h)
            torch.testing.assert_close(table[h * W + w], torch.tensor(expected))


def test_2d_space_scale_emulates_a_finer_grid():
    # 16x16 grid at space_scale 0.5 = positions 0, 2, 4, ... of the 32x32 grid
    coarse = get_2d_sincos_pos_embed(16, (16, 16), scale=0.5).view(16, 16, 16)
    fine = get_2d_sincos_pos_embed(16, (32, 32)).view(32, 32, 16)
    torch.testing.assert_close(coarse, fine[::2, ::2])


def test_2d_base_size_stretches_grid_to_base_units():
    H, W, D, scale, base = 3, 6, 8, 0.625, 4
    table = get_2d_sincos_pos_embed(D, (H, W), scale=scale, base_size=base)
    for h in range(H):
        for w in range(W):
            ph, pw = h / scale * base / H, w / scale * base / W
            expected = sincos_reference(D // 2, pw) + sincos_reference(D // 2, ph)
            torch.testing.assert_close(table[h * W + w], torch.tensor(expected))


def test_dynamic_table_is_cached_and_cast():
    a = position_embedding_2d(8, 3, 4, 0.5, 3, dtype=torch.float16)
    b = position_embedding_2d(8, 3, 4, 0.5, 3, dtype=torch.float16)
    assert a.shape == (1, 12, 8) and a.dtype == torch.float16
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0].float(), get_2d_sincos_pos_embed(8, (3, 4), 0.5, 3), atol=1e-3, rtol=1e-3)


def test_odd_dims_are_rejected():
    with pytest.raises(ValueError):
        get_2d_sincos_pos_embed(6, (2, 2))
    with pytest.raises(ValueError):
        RotaryEmbedding(7)


# ---------------------------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------------------------


def test_rope_freqs_are_a_frozen_parameter_in_the_state_dict():
    rope = RotaryEmbedding(72)
    assert list(rope.state_dict()) == ["freqs"]
    assert rope.freqs.shape == (36,) and not rope.freqs.requires_grad
    torch.testing.assert_close(rope.freqs, torch.tensor([10000 ** (-2 * i / 72) for i in range(36)]))


def test_rope_rotates_interleaved_pairs_like_complex_multiplication():
    dim, L = 8, 5
    rope = RotaryEmbedding(dim)
    q = torch.randn(2, 3, L, dim)
    out = rope.rotate_queries_or_keys(q)
    # pairs (0,1), (2,3), ... as complex numbers, multiplied by e^{i * pos * theta_k}
    qc = torch.view_as_complex(q.double().reshape(2, 3, L, dim // 2, 2).contiguous())
    theta = torch.tensor([10000 ** (-2 * k / dim) for k in range(dim // 2)], dtype=torch.float64)
    angles = torch.arange(L, dtype=torch.float64)[:, None] * theta[None]
    expected = torch.view_as_real(qc * torch.polar(torch.ones_like(angles), angles)).reshape(2, 3, L, dim)
    torch.testing.assert_close(out, expected.float(), atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(16)
    q, k = torch.randn(16), torch.randn(16)
    seq_q = q.expand(8, 16).clone()[None]
    seq_k = k.expand(8, 16).clone()[None]
    rq, rk = rope(seq_q)[0], rope(seq_k)[0]
    scores = rq @ rk.T  # [8, 8]
    for offset in range(-3, 4):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), atol=1e-4, rtol=1e-4)


def test_rotate_half_pairs():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(rotate_half(x), torch.tensor([-2.0, 1.0, -4.0, 3.0]))
