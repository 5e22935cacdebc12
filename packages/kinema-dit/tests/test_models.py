"""Behaviour every kinema-dit model shares: attention backend selection, gradient checkpointing,
caption dropout, registration under its flavour name."""

import uuid

import pytest
import torch

from kinema.core import AttentionBackend, KinemaError, UnknownNameError, get_registry, lookup
from kinema.dit.attention import math_attention
from kinema.dit.dit import DiT
from kinema.dit.pixart import PixArt
from kinema.dit.stdit import STDiT
from kinema.dit.stdit2 import STDiT2


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
}


def _run(model, captions, batch=2, seed=0):
    _, make_inputs = MODELS[model._test_key]
    torch.manual_seed(seed)
    x, extra = make_inputs(batch)
    y, mask = captions(batch)
    t = torch.arange(batch) * 300 + 7
    return model(x, t, y, mask, **extra)


def _build(key, tiny, randomize, **kw):
    model = randomize(MODELS[key][0](tiny, **kw))
    model._test_key = key
    return model


@pytest.mark.parametrize("key", ["stdit", "stdit2", "dit", "pixart"])
def test_sdpa_and_math_backends_agree(key, tiny, randomize, captions):
    """Whole-model agreement: spatial, temporal (STDiT/STDiT2, incl. RoPE + QK-norm) and ragged
    cross-attention all go through the configured backend."""
    model = _build(key, tiny, randomize).eval()
    out_sdpa = _run(model, captions)
    model.use_attention_backend("math")
    out_math = _run(model, captions)
    assert out_sdpa.abs().mean() > 1e-2
    torch.testing.assert_close(out_math, out_sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key,calls_per_block", [("stdit", 3), ("stdit2", 3), ("dit", 2), ("pixart", 2)])
def test_backend_registered_at_runtime_is_used_by_name(key, calls_per_block, tiny, randomize, captions):
    name = f"counting-{uuid.uuid4().hex[:8]}"
    calls = []

    def counting(q, k, v, attn_mask=None, scale=None):
        calls.append(attn_mask is not None)
        return math_attention(q, k, v, attn_mask=attn_mask, scale=scale)

    get_registry("attention_backend").add(name, AttentionBackend(name, counting, description="test"))
    reference = _build(key, tiny, randomize).eval()
    model = _build(key, tiny, randomize, attention=name).eval()
    assert model.config.attention == name
    out = _run(model, captions)
    assert len(calls) == calls_per_block * tiny["depth"]
    assert sum(calls) == tiny["depth"]  # only cross-attention carries the caption mask
    torch.testing.assert_close(out, _run(reference, captions), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [STDiT, STDiT2, DiT, PixArt])
def test_unknown_backend_name_fails_at_construction_listing_names(cls, tiny):
    with pytest.raises(UnknownNameError) as err:
        cls(attention="flash3000", **tiny)
    message = str(err.value)
    assert "flash3000" in message and "sdpa" in message and "math" in message


@pytest.mark.parametrize("key", ["stdit", "stdit2", "dit", "pixart"])
def test_gradient_checkpointing_gives_same_grads(key, tiny, randomize, captions):
    model = _build(key, tiny, randomize, drop_path=0.0).train()
    model.y_embedder.uncond_prob = 0.0  # deterministic captions for the comparison

    def grads():
        model.zero_grad()
        _run(model, captions).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    seen = []
    hook = model.blocks[0].register_forward_pre_hook(lambda *a: seen.append(1))
    checkpointed = grads()
    hook.remove()
    assert len(seen) == 2  # the block ran again during backward: activations were recomputed
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for n in plain:
        torch.testing.assert_close(checkpointed[n], plain[n], atol=1e-6, rtol=1e-5, msg=n)


@pytest.mark.parametrize("key", ["stdit", "stdit2"])
def test_caption_dropout_in_training_uses_null_caption(key, tiny, randomize, captions):
    model = _build(key, tiny, randomize, class_dropout_prob=1.0)
    _, make_inputs = MODELS[key]
    torch.manual_seed(0)
    x, extra = make_inputs(2)
    y, mask = captions(2)
    t = torch.tensor([5, 500])
    dropped = model.train()(x, t, y, mask, **extra)
    null = model.y_embedder.y_embedding.expand_as(y)
    torch.testing.assert_close(dropped, model.eval()(x, t, null, mask, **extra))
    assert (model(x, t, y, mask, **extra) - dropped).abs().max() > 1e-3


@pytest.mark.parametrize("key", ["stdit", "stdit2", "dit", "pixart"])
def test_no_caption_is_an_error_naming_the_null_caption(key, tiny, randomize, captions):
    """y=None (or features of no tokens) is not read as unconditional: the error names the model's null caption,
    which, passed as y, is the unconditional call."""
    model = _build(key, tiny, randomize).eval()
    x, extra = MODELS[key][1](2)
    t = torch.tensor([5, 500])
    with pytest.raises(KinemaError, match=r"got no caption \(y=None\).*model.null_caption\(\)"):
        model(x, t, None, **extra)
    with pytest.raises(KinemaError, match=r"\(2, 1, 0, 16\) with no tokens"):
        model(x, t, torch.zeros(2, 1, 0, 16), **extra)
    with pytest.raises(KinemaError, match=r"y=None"):
        model.model_inputs(None)
    y, _ = captions(2)
    with pytest.raises(KinemaError, match=r"caption mask rows \[0, 1\] have no valid token"):  # all-empty batch
        model(x, t, y, torch.zeros(2, 6), **extra)
    null = model.null_caption()[None, None].expand(2, -1, -1, -1)
    with torch.no_grad():  # the named fix is the unconditional call
        torch.testing.assert_close(model(x, t, null, **extra),
                                   model(x, t, y, **extra, force_drop_ids=torch.ones(2, dtype=torch.long)))


@pytest.mark.parametrize("name,cls", [("STDiT-XL/2", STDiT), ("STDiT2-XL/2", STDiT2), ("DiT-XL/2", DiT),
                                      ("PixArt-XL/2", PixArt)])
def test_flavours_are_registered_by_name(name, cls, tiny):
    factory = lookup("model", name)
    model = factory(**{**tiny, "depth": 1})  # overrides apply on top of the flavour
    assert isinstance(model, cls) and len(model.blocks) == 1


# DiT's sizes: (depth, hidden size, heads); STDiT2's L is 1056 wide (a multiple of 3, 16 heads of even width);
# T is kinema's tiny size
SIZES = {"T": (6, 144, 4), "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family,cls", [("STDiT", STDiT), ("STDiT2", STDiT2), ("DiT", DiT), ("PixArt", PixArt)])
def test_every_family_comes_in_dit_sizes(family, cls, size):
    depth, hidden, heads = (24, 1056, 16) if (family, size) == ("STDiT2", "L") else SIZES[size]
    with torch.device("meta"):
        model = lookup("model", f"{family}-{size}/2")()
    assert type(model) is cls
    assert (model.config.depth, model.config.hidden_size, model.config.num_heads) == (depth, hidden, heads)
    assert len(model.blocks) == depth and model.blocks[0].attn.head_dim == hidden // heads


def test_flavour_defaults_are_the_familys_own_whatever_the_size():
    with torch.device("meta"):
        stdit2, dit = lookup("model", "STDiT2-S/2")(), lookup("model", "DiT-B/2")()
    assert stdit2.config.qk_norm and stdit2.config.input_sq_size == 512 and stdit2.config.model_max_length == 200
    assert tuple(dit.config.input_size) == (16, 32, 32) and tuple(dit.config.patch_size) == (1, 2, 2)


def test_a_shrunk_flavour_is_the_same_model_whatever_size_it_names(tiny):
    """A config that overrides depth, width and heads builds the same model from any size's name."""
    kwargs = {**tiny, "qk_norm": True, "input_sq_size": 32}
    torch.manual_seed(0)
    xl = lookup("model", "STDiT2-XL/2")(**kwargs)
    torch.manual_seed(0)
    small = lookup("model", "STDiT2-S/2")(**kwargs)
    assert {k: v for k, v in xl.config.items() if k != "_use_default_values"} == \
        {k: v for k, v in small.config.items() if k != "_use_default_values"}
    assert all(torch.equal(a, b) for a, b in zip(xl.state_dict().values(), small.state_dict().values()))
