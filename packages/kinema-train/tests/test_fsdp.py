"""FSDP2 on one process: the same run as without it, and bf16 compute weights over fp32 master weights."""

import pytest
import torch
from tiny import tiny_config

from kinema.core import KinemaError
from kinema.train.config import load_config
from kinema.train.trainer import Trainer

EXTRA = {"mask_ratios": {"mask_no": 0.5, "mask_quarter_head": 0.5}}


def run(tmp, name, **sections):
    trainer = Trainer(tiny_config(tmp, "STDiT2", data=EXTRA, checkpoint={"dir": str(tmp / name)}, **sections))
    return trainer, trainer.train(max_steps=3)


def test_fsdp_on_one_process_trains_as_without_it(tmp_path):
    _, plain = run(tmp_path, "plain")
    trainer, sharded = run(tmp_path, "fsdp", parallel={"data": "fsdp"})
    assert type(trainer.model).__name__ == "FSDPSTDiT2"
    assert sharded == pytest.approx(plain, abs=1e-6)


def test_bf16_params_compute_in_bf16_and_keep_fp32_masters(tmp_path):
    _, fp32 = run(tmp_path, "fp32", parallel={"data": "fsdp"})
    trainer = Trainer(tiny_config(tmp_path, "STDiT2", data=EXTRA, checkpoint={"dir": str(tmp_path / "bf16")},
                                  parallel={"data": "fsdp"}, optim={"mixed_precision": "bf16-params"}))
    seen = []
    hook = trainer.model.blocks[0].attn.qkv.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    bf16 = trainer.train(max_steps=3)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the matmuls run in bf16 ...
    assert {p.dtype for p in trainer.params} == {torch.float32}  # ... AdamW updates fp32 shards
    assert {s["exp_avg"].dtype for s in trainer.optimizer.state.values()} == {torch.float32}
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=2e-2)


def test_bf16_params_needs_fsdp(tmp_path):
    with pytest.raises(KinemaError, match="set parallel.data=fsdp"):
        load_config(None, ["optim.mixed_precision=bf16-params"])
    with pytest.raises(KinemaError, match="parallel.tensor=1"):
        load_config(None, ["parallel.data=fsdp", "parallel.tensor=2"])
