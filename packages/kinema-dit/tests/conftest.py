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
