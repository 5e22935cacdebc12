import torch
import torch.nn.functional as F

from kinema.vae.modules import AttnBlock3D, CausalConv3d, TimeDownsample2x, TimeUpsample2x


def test_causal_conv_keeps_length_and_ignores_future_frames():
    torch.manual_seed(0)
    conv = CausalConv3d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 7, 8, 8)
    y = conv(x)
    assert y.shape == (1, 5, 7, 8, 8)
    x2 = x.clone()
    x2[:, :, 4:] += torch.randn_like(x2[:, :, 4:])
    y2 = conv(x2)
    assert torch.allclose(y[:, :, :4], y2[:, :, :4])
    assert not torch.allclose(y[:, :, 4:], y2[:, :, 4:])


def test_causal_conv_pads_with_the_first_frame():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 4, 5, 5)
    padded = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
    ref = F.conv3d(padded, conv.conv.weight, conv.conv.bias, padding=(0, 1, 1))
    assert torch.allclose(conv(x), ref, atol=1e-6)


def test_zero_tail_kernel_equals_2d_conv_per_frame():
    torch.manual_seed(0)
    w2d, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    conv = CausalConv3d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.weight[:, :, -1] = w2d
        conv.conv.bias.copy_(b)
    x = torch.randn(2, 3, 5, 6, 6)
    per_frame = torch.stack([F.conv2d(x[:, :, t], w2d, b, padding=1) for t in range(5)], dim=2)
    assert torch.allclose(conv(x), per_frame, atol=1e-5)


def test_conv_init_methods():
    assert torch.count_nonzero(CausalConv3d(4, 4, 3, init_method="zero").conv.weight) == 0
    avg = CausalConv3d(4, 4, (3, 1, 1), init_method="avg")
    x = torch.randn(1, 4, 5, 2, 2)
    # identity/3 at every tap: the mean of frames t-2..t (frame 0 repeated on the left)
    padded = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
    ref = (padded[:, :, :-2] + padded[:, :, 1:-1] + padded[:, :, 2:]) / 3
    assert torch.allclose(avg(x), ref, atol=1e-6)
    assert torch.count_nonzero(avg.conv.bias) == 0


def test_time_downsample_formula_and_lengths():
    x = torch.randn(1, 2, 17, 3, 3)
    down = TimeDownsample2x()
    y = down(x)
    assert y.shape[2] == 9 and down(y).shape[2] == 5
    assert torch.allclose(y[:, :, 0], x[:, :, 0], atol=1e-6)
    for j in range(1, 9):
        idx = [max(i, 0) for i in (2 * j - 2, 2 * j - 1, 2 * j)]
        assert torch.allclose(y[:, :, j], x[:, :, idx].mean(2), atol=1e-6)
    assert down(x[:, :, :1]).shape[2] == 1
    assert [down(torch.zeros(1, 1, t, 1, 1)).shape[2] for t in (65, 33)] == [33, 17]


def test_time_upsample_keeps_first_frame_and_doubles_the_rest():
    x = torch.randn(1, 2, 5, 3, 3)
    up = TimeUpsample2x()
    y = up(x)
    assert y.shape[2] == 9 and up(y).shape[2] == 17
    assert torch.equal(y[:, :, 0], x[:, :, 0])
    # align_corners=False linear x2: the first upsampled frame repeats x1, the last repeats x4
    assert torch.allclose(y[:, :, 1], x[:, :, 1]) and torch.allclose(y[:, :, -1], x[:, :, -1])
    assert torch.allclose(y[:, :, 2], 0.75 * x[:, :, 1] + 0.25 * x[:, :, 2], atol=1e-6)
    assert up(x[:, :, :1]).shape[2] == 1


def _dense_attention(block, x, buggy):
    """Reference: the LDM attention written with explicit bmm, with or without the released reshape."""
    b, c, t, h, w = x.shape
    hn = block.norm(x)
    q, k, v = block.q(hn), block.k(hn), block.v(hn)

    def tokens(a):
        return a.reshape(b * t, c, h * w) if buggy else a.permute(0, 2, 1, 3, 4).reshape(b * t, c, h * w)

    q, k, v = tokens(q), tokens(k), tokens(v)
    weights = torch.softmax(torch.bmm(q.permute(0, 2, 1), k) * c**-0.5, dim=2)
    out = torch.bmm(v, weights.permute(0, 2, 1))
    out = out.reshape(b, c, t, h, w) if buggy else out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    return x + block.proj_out(out)


def test_attention_modes_match_dense_references_and_agree_at_one_frame():
    torch.manual_seed(0)
    compat = AttnBlock3D(8, "compat_v100", norm_num_groups=4)
    fixed = AttnBlock3D(8, "fixed", norm_num_groups=4)
    fixed.load_state_dict(compat.state_dict())
    for m in (compat, fixed):
        torch.nn.init.normal_(m.proj_out.conv.weight)
    fixed.load_state_dict(compat.state_dict())
    x = torch.randn(2, 8, 3, 4, 5)
    assert torch.allclose(compat(x), _dense_attention(compat, x, buggy=True), atol=1e-5)
    assert torch.allclose(fixed(x), _dense_attention(fixed, x, buggy=False), atol=1e-5)
    assert not torch.allclose(compat(x), fixed(x), atol=1e-3)
    one = x[:, :, :1]
    assert torch.allclose(compat(one), fixed(one), atol=1e-6)


def test_fixed_attention_is_per_frame():
    torch.manual_seed(0)
    fixed = AttnBlock3D(8, "fixed", norm_num_groups=4)
    torch.nn.init.normal_(fixed.proj_out.conv.weight)
    fixed.norm = torch.nn.Identity()  # GroupNorm pools over time; without it frames must be independent
    x = torch.randn(1, 8, 3, 4, 4)
    x2 = x.clone()
    x2[:, :, 2] += 1.0
    assert torch.allclose(fixed(x)[:, :, :2], fixed(x2)[:, :, :2], atol=1e-6)
