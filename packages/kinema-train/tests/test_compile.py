"""`model.compile: true`: each block compiled, the training step equal to eager's.

Tolerance: fp32 on the CPU, atol 1e-5 and rtol 1e-4 on loss and gradients (inductor reorders fp32
reductions); losses after optimizer steps within 1e-4.
"""

import pytest
import torch
from tiny import MODELS, tiny_config

from kinema.dit.compile import is_compiled
from kinema.train.data import BatchStream
from kinema.train.trainer import Trainer

TOL = dict(atol=1e-5, rtol=1e-4)


def _trainer(tmp_path, compile_: bool) -> Trainer:
    model = {**MODELS["STDiT2"], "kwargs": {**MODELS["STDiT2"]["kwargs"], "depth": 1},
             "gradient_checkpointing": True, "compile": compile_}
    return Trainer(tiny_config(tmp_path / str(compile_), "STDiT2", model=model))


def _loss_and_grads(trainer: Trainer, batch: dict):
    loss = trainer.loss(batch, 0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.optimizer.zero_grad(set_to_none=True)
    return loss.detach(), grads


def test_compiled_training_step_matches_eager_with_gradient_checkpointing(tmp_path):
    torch._dynamo.reset()
    eager, compiled = _trainer(tmp_path, False), _trainer(tmp_path, True)
    assert is_compiled(compiled.model) and not is_compiled(eager.model)
    _, batch = next(iter(BatchStream(eager.cfg.data, eager.cfg.optim.seed)))  # leaves the trainers' streams
    loss, grads = _loss_and_grads(eager, batch)
    loss_c, grads_c = _loss_and_grads(compiled, batch)
    torch.testing.assert_close(loss_c, loss, **TOL)
    assert grads_c.keys() == grads.keys() and len(grads) > 10
    for name in grads:
        torch.testing.assert_close(grads_c[name], grads[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")
    assert compiled.train(max_steps=2) == pytest.approx(eager.train(max_steps=2), abs=1e-4)


def test_gpu_train_benchmark_smoke_runs(tmp_path):
    """benchmarks/gpu_train.py --smoke: the GPU benchmark's code on the CPU at toy size."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    out = tmp_path / "smoke.json"
    result = subprocess.run([sys.executable, "benchmarks/gpu_train.py", "--smoke", "--only", "STDiT2-XL/2",
                             "--only", "DiT-XL/2", "--json", str(out)], cwd=root, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["variant"]) for r in rows] == [("STDiT2-XL/2", "eager-fp32"), ("DiT-XL/2", "eager-fp32")]
    assert all(r["tokens_per_s"] > 0 and r["flops_per_s"] > 0 for r in rows)
    assert "tokens/s" in result.stdout
