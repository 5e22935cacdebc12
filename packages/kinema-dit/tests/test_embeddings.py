import math

import pytest
import torch

from kinema.core import KinemaError
from kinema.dit.embeddings import CaptionEmbedder, SizeEmbedder, TimestepEmbedder, timestep_embedding


def test_timestep_sinusoid_is_cos_first_fp32():
    t = torch.tensor([0, 1, 37, 999], dtype=torch.int64)
    emb = timestep_embedding(t, 256)
    assert emb.shape == (4, 256) and emb.dtype == torch.float32
    for row, tv in zip(emb, t.tolist()):
        freqs = [math.exp(-math.log(10000) * i / 128) for i in range(128)]
        expected = [math.cos(tv * f) for f in freqs] + [math.sin(tv * f) for f in freqs]
        torch.testing.assert_close(row, torch.tensor(expected), atol=2e-4, rtol=1e-4)
    assert torch.all(emb[0, :128] == 1) and torch.all(emb[0, 128:] == 0)  # cos(0)=1 comes first


def test_timestep_embedder_names_and_dtype():
    emb = TimestepEmbedder(32)
    assert set(emb.state_dict()) == {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"}
    assert emb.mlp[0].weight.shape == (32, 256)
    out = emb.to(torch.float64)(torch.tensor([3, 4]))
    assert out.shape == (2, 32) and out.dtype == torch.float64


def test_size_embedder_flattens_dims_and_repeats_single_row():
    emb = SizeEmbedder(12)
    hw = torch.tensor([[240.0, 426.0], [512.0, 512.0]])
    out = emb(hw, 2)
    assert out.shape == (2, 24)
    # each scalar goes through the same MLP: the second half is the width's embedding
    torch.testing.assert_close(out[:, 12:], emb(hw[:, 1], 2))
    single = emb(torch.tensor([24.0]), 3)
    assert single.shape == (3, 12)
    torch.testing.assert_close(single[0], single[2])
    with pytest.raises(KinemaError, match="one value per sample"):
        emb(torch.tensor([1.0, 2.0]), 3)


def test_caption_embedder_layout():
    emb = CaptionEmbedder(16, 32, uncond_prob=0.1, token_num=6)
    assert set(emb.state_dict()) == {
        "y_embedding", "y_proj.fc1.weight", "y_proj.fc1.bias", "y_proj.fc2.weight", "y_proj.fc2.bias"
    }
    assert "y_embedding" in dict(emb.named_buffers()) and "y_embedding" not in dict(emb.named_parameters())
    assert emb.y_embedding.shape == (6, 16)


def test_caption_dropout_replaces_whole_captions_by_y_embedding():
    torch.manual_seed(0)
    emb = CaptionEmbedder(16, 32, uncond_prob=0.5, token_num=6)
    y = torch.randn(64, 1, 6, 16)
    null = emb.y_proj(emb.y_embedding)
    out = emb(y, train=True)
    kept = torch.isclose(out, emb.y_proj(y), atol=1e-6).flatten(1).all(1)
    dropped = torch.isclose(out, null.expand_as(out), atol=1e-6).flatten(1).all(1)
    assert torch.all(kept ^ dropped)  # every caption is either untouched or entirely the null caption
    assert 16 < int(dropped.sum()) < 48
    # no dropout at eval, forced drop at eval for classifier-free guidance
    torch.testing.assert_close(emb(y, train=False), emb.y_proj(y))
    forced = emb(y[:2], train=False, force_drop_ids=torch.tensor([1, 0]))
    torch.testing.assert_close(forced[0, 0], null)
    torch.testing.assert_close(forced[1], emb.y_proj(y[1]))


def test_caption_dropout_probability_extremes_and_length_check():
    y = torch.randn(8, 1, 6, 16)
    always = CaptionEmbedder(16, 32, uncond_prob=1.0, token_num=6)
    torch.testing.assert_close(always(y, train=True), always.y_proj(always.y_embedding).expand(8, 1, 6, 32))
    never = CaptionEmbedder(16, 32, uncond_prob=0.0, token_num=6)
    torch.testing.assert_close(never(y, train=True), never.y_proj(y))
    with pytest.raises(KinemaError, match="model_max_length=6"):
        always(torch.randn(2, 1, 4, 16), train=True)
