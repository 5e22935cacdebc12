import torch

from kinema.dit.dit import DiT, DiT_XL_2
from kinema.dit.pos_embed import get_1d_sincos_pos_embed, get_2d_sincos_pos_embed


def test_xl2_is_stdit_without_temporal_attention(upstream_shapes):
    with torch.device("meta"):
        model = DiT_XL_2(input_size=(16, 32, 32))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = {k: v for k, v in upstream_shapes["STDiT-XL/2"].items() if "attn_temp" not in k}
    assert shapes == expected
    assert sum(p.numel() for p in model.parameters()) == 610_856_096


def test_position_tables_are_spatial_plus_temporal_sincos(tiny):
    model = DiT(input_size=(3, 4, 6), space_scale=0.5, time_scale=2 / 3, **tiny)
    torch.testing.assert_close(model.pos_embed[0], get_2d_sincos_pos_embed(48, (2, 3), scale=0.5))
    torch.testing.assert_close(model.pos_embed_temporal[0], get_1d_sincos_pos_embed(48, 3, scale=2 / 3))


def test_full_attention_mixes_all_frames_in_one_block(tiny, randomize, captions):
    """One block, MLP removed: a change in the last frame reaches the first frame through the single
    attention over all T*S tokens (an STDiT with its temporal projection at zero could not)."""
    cfg = {**tiny, "depth": 1}
    model = randomize(DiT(input_size=(3, 4, 4), **cfg), keep_zero=("mlp.fc2",)).eval()
    y, mask = captions(1)
    x = torch.randn(1, 4, 3, 4, 4)
    x2 = x.clone()
    x2[:, :, 2, 0, 0] += 1.0
    out, out2 = model(x, torch.tensor([7]), y, mask), model(x2, torch.tensor([7]), y, mask)
    assert out.shape == (1, 8, 3, 4, 4)
    assert (out[:, :, 0, 2:, 2:] - out2[:, :, 0, 2:, 2:]).abs().max() > 1e-4
    # and it is exactly the attention that carries it
    torch.nn.init.zeros_(model.blocks[0].attn.proj.weight)
    torch.nn.init.zeros_(model.blocks[0].attn.proj.bias)
    out, out2 = model(x, torch.tensor([7]), y, mask), model(x2, torch.tensor([7]), y, mask)
    torch.testing.assert_close(out[:, :, 0], out2[:, :, 0])


def test_backends_agree_with_ragged_captions(tiny, randomize, captions):
    model = randomize(DiT(input_size=(2, 4, 4), **tiny)).eval()
    y, mask = captions(2)
    x = torch.randn(2, 4, 2, 4, 4)
    out = model(x, torch.tensor([3, 400]), y, mask)
    model.use_attention_backend("math")
    assert model.config.attention == "math"
    torch.testing.assert_close(model(x, torch.tensor([3, 400]), y, mask), out, atol=1e-5, rtol=1e-5)
