"""Regional compile: each block compiled, outputs, loss and gradients equal to eager.

Tolerance: fp32 on the CPU, atol 1e-5 and rtol 1e-4 (inductor fuses and reorders fp32 reductions,
so results differ from eager in the last bits, never by more).
"""

import copy

import pytest
import torch
from torch._dynamo.utils import counters

from kinema.core import KinemaError
from kinema.dit.compile import check_compile_available, compile_blocks, is_compiled, transformer_blocks
from kinema.dit.dit import DiT
from kinema.dit.latte import LatteT2V
from kinema.dit.stdit2 import STDiT2

TOL = dict(atol=1e-5, rtol=1e-4)


def _sizes(T, H, W, batch=2):
    return dict(num_frames=torch.full((batch,), float(T)), height=torch.full((batch,), H * 8.0),
                width=torch.full((batch,), W * 8.0), ar=torch.full((batch,), H / W), fps=torch.full((batch,), 24.0))


def _models(tiny, randomize):
    cfg = {**tiny, "depth": 1, "class_dropout_prob": 0.0}  # no random caption dropout: steps comparable
    stdit2 = randomize(STDiT2(**cfg, qk_norm=True, input_sq_size=64))
    dit = randomize(DiT(input_size=(2, 4, 4), **cfg))
    return {"STDiT2": (stdit2, _sizes(2, 4, 4)), "DiT": (dit, {})}


def _step(model, x, t, y, mask, extra):
    """One training step's loss and gradients (the optimizer is not part of what compile changes)."""
    model.zero_grad(set_to_none=True)
    loss = model(x, t, y, mask, **extra).square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["STDiT2", "DiT"])
def test_compiled_blocks_match_eager_forward_loss_and_gradients(tiny, randomize, captions, family):
    check_compile_available(torch.device("cpu"))
    eager, extra = _models(tiny, randomize)[family]
    compiled = copy.deepcopy(eager)
    compiled.enable_gradient_checkpointing()  # compile must work under per-block checkpointing
    torch._dynamo.reset()
    counters.clear()
    assert compile_blocks(compiled) == 1 and is_compiled(compiled) and not is_compiled(eager)
    assert compile_blocks(compiled) == 0  # idempotent
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # names unchanged: checkpoints load

    y, mask = captions(2)
    x = torch.randn(2, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([3, 800])
    eager.train(), compiled.train()
    loss, grads = _step(eager, x, t, y, mask, extra)
    loss_c, grads_c = _step(compiled, x, t, y, mask, extra)
    assert counters["stats"]["unique_graphs"] >= 1  # the block really ran through dynamo, not eager
    torch.testing.assert_close(loss_c, loss, **TOL)
    assert grads_c.keys() == grads.keys() and len(grads) > 10
    for name in grads:
        torch.testing.assert_close(grads_c[name], grads[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")

    eager.eval(), compiled.eval()  # the sampling path: no grad, no checkpointing
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, y, mask, **extra), eager(x, t, y, mask, **extra), **TOL)


def test_blocks_are_known_per_family(tiny):
    latte = LatteT2V(sample_size=8, num_layers=2, num_attention_heads=2, attention_head_dim=8, caption_channels=12,
                     caption_num_tokens=6)
    blocks = transformer_blocks(latte)
    assert blocks == [*latte.transformer_blocks, *latte.temporal_transformer_blocks] and len(blocks) == 4
    stdit2 = STDiT2(**tiny)
    assert transformer_blocks(stdit2) == list(stdit2.blocks)
    with pytest.raises(KinemaError, match="Linear has no known transformer blocks"):
        compile_blocks(torch.nn.Linear(2, 2))


def test_missing_cpu_compiler_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(KinemaError, match="no C\\+\\+ compiler.*apt-get install g\\+\\+"):
        check_compile_available(torch.device("cpu"))
