"""Attention backends are resolved once per module (construction or switch), never during a forward;
switching through our API or diffusers' changes every module and the config, or fails loudly."""

import uuid

import pytest
import torch

from kinema.core import AttentionBackend, KinemaError, UnknownNameError, get_registry
from kinema.dit import latte
from kinema.dit.attention import math_attention, resolve_backend
from kinema.dit.dit import DiT
from kinema.dit.layers import Attention, MultiHeadCrossAttention
from kinema.dit.pixart import PixArt
from kinema.dit.stdit import STDiT
from kinema.dit.stdit2 import STDiT2

ATTENTION_TYPES = (Attention, MultiHeadCrossAttention, latte.Attention)


def _sizes(T, H, W, batch):
    return dict(num_frames=torch.full((batch,), float(T)), height=torch.full((batch,), H * 8.0),
                width=torch.full((batch,), W * 8.0), ar=torch.full((batch,), H / W), fps=torch.full((batch,), 24.0))


# name -> (build(tiny, **overrides), inputs(batch) -> (x, extra forward kwargs))
MODELS = {
    "stdit": (lambda tiny, **kw: STDiT(input_size=(3, 4, 6), **tiny, **kw),
              lambda b: (torch.randn(b, 4, 3, 4, 6), {})),
    "stdit2": (lambda tiny, **kw: STDiT2(qk_norm=True, input_sq_size=64, **tiny, **kw),
               lambda b: (torch.randn(b, 4, 3, 5, 6), _sizes(3, 5, 6, b))),
    "dit": (lambda tiny, **kw: DiT(input_size=(2, 4, 4), **tiny, **kw),
            lambda b: (torch.randn(b, 4, 2, 4, 4), {})),
    "pixart": (lambda tiny, **kw: PixArt(input_size=8, **tiny, **kw),
               lambda b: (torch.randn(b, 4, 8, 8), {})),
    # LatteT2V's own sizes: 16-d hidden (2 heads of 8), 16-d captions of 6 tokens, 3 frames of 8x8
    "latte": (lambda tiny, **kw: latte.LatteT2V(sample_size=8, num_layers=tiny["depth"], num_attention_heads=2,
                                                attention_head_dim=8, caption_channels=16, caption_num_tokens=6,
                                                video_length=3, **kw),
              lambda b: (torch.randn(b, 4, 3, 8, 8), {})),
}
KEYS = list(MODELS)


@pytest.fixture
def lookups(monkeypatch):
    """Names looked up in the attention-backend registry. ``entry`` is what ``get`` (and so
    ``resolve_backend``) goes through: counting it catches every name lookup."""
    registry = get_registry("attention_backend")
    names = []
    entry = registry.entry

    def counting_entry(name):
        names.append(name)
        return entry(name)

    monkeypatch.setattr(registry, "entry", counting_entry)
    return names


def _build(key, tiny, randomize, **kw):
    return randomize(MODELS[key][0](tiny, **kw)).eval()


def _run(key, model, captions, batch=2):
    torch.manual_seed(0)
    x, extra = MODELS[key][1](batch)
    y, mask = captions(batch)
    with torch.no_grad():
        return model(x, torch.tensor([7, 307]), y, mask, **extra)


def _attention_modules(model):
    return [m for m in model.modules() if isinstance(m, ATTENTION_TYPES)]


@pytest.mark.parametrize("key", KEYS)
def test_one_lookup_per_attention_module_at_construction_none_in_forward(key, tiny, randomize, captions, lookups):
    model = _build(key, tiny, randomize)
    modules = _attention_modules(model)
    assert len(modules) >= 2 * tiny["depth"]  # spatial (or full) self-attention and cross-attention per block
    assert lookups == ["sdpa"] * len(modules)
    lookups.clear()
    out = _run(key, model, captions)
    assert lookups == []
    assert out.abs().mean() > 1e-2


@pytest.mark.parametrize("key", KEYS)
def test_use_attention_backend_switches_every_module_and_the_config(key, tiny, randomize, captions, lookups):
    model = _build(key, tiny, randomize)
    out_sdpa = _run(key, model, captions)
    lookups.clear()
    model.use_attention_backend("math")
    assert lookups == ["math"]  # resolved once for the whole model
    assert model.config.attention == "math"
    math_backend = resolve_backend("math")
    assert all(m.backend == "math" and m.backend_impl is math_backend for m in _attention_modules(model))
    lookups.clear()
    torch.testing.assert_close(_run(key, model, captions), out_sdpa, atol=1e-5, rtol=1e-5)
    assert lookups == []


@pytest.mark.parametrize("key", KEYS)
def test_forward_calls_the_switched_backend(key, tiny, randomize, captions):
    name = f"counting-{uuid.uuid4().hex[:8]}"
    calls = []

    def counting(q, k, v, attn_mask=None, scale=None):
        calls.append(tuple(q.shape))
        return math_attention(q, k, v, attn_mask=attn_mask, scale=scale)

    get_registry("attention_backend").add(name, AttentionBackend(name, counting, description="math, counted"))
    model = _build(key, tiny, randomize)
    model.use_attention_backend(name)
    _run(key, model, captions)
    assert len(calls) >= len(_attention_modules(model))  # every module ran through it (Latte: per frame too)


@pytest.mark.parametrize("key", KEYS)
def test_diffusers_set_attention_backend_maps_names_or_raises(key, tiny, randomize, captions):
    model = _build(key, tiny, randomize)
    model.set_attention_backend("_native_math")
    assert model.config.attention == "math"
    assert {m.backend for m in _attention_modules(model)} == {"math"}
    model.set_attention_backend("native")
    assert model.config.attention == "sdpa"
    assert {m.backend for m in _attention_modules(model)} == {"sdpa"}
    model.set_attention_backend("math")  # kinema's own names are accepted as well
    assert model.config.attention == "math"
    model.reset_attention_backend()
    assert model.config.attention == "sdpa"

    for unmapped in ("sage", "_native_flash", "no-such-kernel"):
        with pytest.raises(KinemaError) as err:
            model.set_attention_backend(unmapped)
        message = str(err.value)
        assert repr(unmapped) in message and "use_attention_backend" in message and "native" in message
        assert "\n" not in message
    assert model.config.attention == "sdpa"
    assert {m.backend for m in _attention_modules(model)} == {"sdpa"}


@pytest.mark.parametrize("key", KEYS)
def test_unavailable_backend_fails_clearly_at_the_call(key, tiny, randomize, captions):
    model = _build(key, tiny, randomize)
    model.set_attention_backend("flash")  # diffusers' name for flash-attn
    assert model.config.attention == "flash_attn"
    with pytest.raises(KinemaError, match=r"'flash_attn'.*use_attention_backend\('sdpa'\)"):
        _run(key, model, captions)  # fp32 on CPU: flash-attn cannot run this whatever is installed
    model.use_attention_backend("sdpa")
    assert _run(key, model, captions).abs().mean() > 1e-2


def test_module_backend_reads_as_the_name_and_unknown_names_leave_it_unchanged(lookups):
    layer = MultiHeadCrossAttention(32, 4, backend="math")
    assert layer.backend == "math" and layer.backend_impl is resolve_backend("math")
    with pytest.raises(UnknownNameError, match="no-such-kernel"):
        layer.backend = "no-such-kernel"
    assert layer.backend == "math" and layer.backend_impl is resolve_backend("math")
    lookups.clear()
    x, cond = torch.randn(2, 5, 32), torch.randn(2, 3, 32)
    layer(x, cond)
    assert lookups == []
