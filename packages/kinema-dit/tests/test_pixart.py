import pytest
import torch

from kinema.core import KinemaError
from kinema.dit.pixart import PixArt, PixArt_XL_2


def test_xl2_layout_matches_stdit_minus_temporal(upstream_shapes):
    with torch.device("meta"):
        model = PixArt_XL_2()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes["x_embedder.proj.weight"] == [1152, 4, 2, 2]
    assert shapes["pos_embed"] == [1, 256, 1152]
    stdit = {
        k: v for k, v in upstream_shapes["STDiT-XL/2"].items() if "attn_temp" not in k and k != "pos_embed_temporal"
    }
    stdit["x_embedder.proj.weight"] = [1152, 4, 2, 2]
    assert shapes == stdit
    assert sum(p.numel() for p in model.parameters()) == 610_856_096


def test_forward_shape_and_learned_sigma(tiny, randomize, captions):
    model = randomize(PixArt(input_size=8, **tiny)).eval()
    y, mask = captions(2)
    out = model(torch.randn(2, 4, 8, 8), torch.tensor([1, 999]), y, mask)
    assert out.shape == (2, 8, 8, 8) and out.dtype == torch.float32
    no_sigma = PixArt(input_size=8, pred_sigma=False, **tiny).eval()
    assert no_sigma(torch.randn(1, 4, 8, 8), torch.tensor([1]), y[:1]).shape == (1, 4, 8, 8)


def test_patches_map_back_to_their_pixels(tiny, randomize, captions):
    """A change confined to one 2x2 patch, with attention and the MLP removed, changes only that patch."""
    model = randomize(PixArt(input_size=8, **tiny), keep_zero=("attn.proj", "mlp.fc2")).eval()
    y, mask = captions(1)
    x = torch.randn(1, 4, 8, 8)
    x2 = x.clone()
    x2[:, :, 2:4, 6:8] += 1.0
    diff = (model(x2, torch.tensor([4]), y, mask) - model(x, torch.tensor([4]), y, mask)).abs().amax(1)[0]
    assert diff[2:4, 6:8].min() > 1e-4
    diff[2:4, 6:8] = 0
    assert diff.max() < 1e-6


def test_wrong_size_is_a_clear_error(tiny):
    model = PixArt(input_size=8, **tiny).eval()
    with pytest.raises(KinemaError, match="8x8"):
        model(torch.randn(1, 4, 6, 8), torch.tensor([1]), torch.randn(1, 1, 6, 16))
