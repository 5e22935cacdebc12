import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"


# tiny configs of the real classes: hidden 48 (a multiple of 3, 4 and the 4 heads), 16-d captions of 6 tokens
@pytest.fixture
def tiny() -> dict:
    return dict(hidden_size=48, depth=2, num_heads=4, caption_channels=16, model_max_length=6)


@pytest.fixture(scope="session")
def upstream_shapes() -> dict:
    return json.loads((DATA / "upstream_state_dict_shapes.json").read_text())


@pytest.fixture
def randomize():
    return randomize_


@pytest.fixture
def captions():
    return caption_batch


@pytest.fixture
def released_final_layer():
    return released_final_layer_


def randomize_(model: torch.nn.Module, seed: int = 0, keep_zero: tuple[str, ...] = (), std: float = 0.1):
    """Fill every parameter with non-zero random values (so zero-initialised projections do
    something), except parameters whose name contains one of ``keep_zero``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in keep_zero):
                p.zero_()
            elif name.endswith("freqs"):
                continue
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def caption_batch(batch: int, tokens: int = 6, channels: int = 16, valid=(2, 5), seed: int = 1):
    """T5-like features [B, 1, L, C] and a mask [B, L] with a different valid count per sample."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(batch, 1, tokens, channels, generator=gen)
    mask = torch.zeros(batch, tokens, dtype=torch.long)
    for b in range(batch):
        mask[b, : valid[b % len(valid)]] = 1
    return y, mask


def released_final_layer_(x, t, t0, x_mask, table, weight, bias, double_norm):
    """Open-Sora 1.1's final layer written out: LN without affine, x*(1+scale)+shift, per-frame select, linear.
    double_norm: given frames are normalised and t0-modulated again on top of the t-modulated x (as released)."""
    def ln(v):
        mean = v.mean(-1, keepdim=True)
        return (v - mean) / torch.sqrt(((v - mean) ** 2).mean(-1, keepdim=True) + 1e-6)

    shift, scale = (table[None] + t[:, None]).chunk(2, dim=1)  # [B, 1, C] each
    shift0, scale0 = (table[None] + t0[:, None]).chunk(2, dim=1)
    x_t = ln(x) * (1 + scale[:, None]) + shift[:, None]  # x [B, T, S, C]
    x_zero = (ln(x_t) if double_norm else ln(x)) * (1 + scale0[:, None]) + shift0[:, None]
    return torch.where(x_mask[:, :, None, None], x_t, x_zero) @ weight.T + bias
