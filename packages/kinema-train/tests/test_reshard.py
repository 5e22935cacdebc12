"""Checkpoints reshard: a run saved on 2 processes resumes on 1 and one saved on 1 resumes on 2 (data
parallel with ZeRO-1, tensor parallel, or FSDP2), with the next losses those of the uninterrupted run."""

import json
from pathlib import Path

import pytest
from tiny import tiny_config
from two_processes import run_on_two_processes

from kinema.train.trainer import Trainer

EXTRA = {"mask_ratios": {"mask_no": 0.5, "mask_quarter_head": 0.5}}
TOL = 1e-5


def one_process(tmp: Path, name: str, resume=None) -> Trainer:
    checkpoint = {"dir": str(tmp / name)} | ({"resume": str(resume)} if resume else {})
    return Trainer(tiny_config(tmp, "STDiT2", data=EXTRA, checkpoint=checkpoint))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reshard")
    uninterrupted = one_process(tmp, "one").train()  # 6 steps, checkpoints at 3 and 6
    run_on_two_processes(Path(__file__).with_name("reshard_worker.py"), str(tmp), str(tmp / "one" / "step-000000003"))
    results = {f.stem: json.loads(f.read_text()) for f in tmp.glob("*.json")}
    resumed = one_process(tmp, "two_to_one", resume=tmp / "two" / "step-000000003")
    results["two_to_one"] = {"start": resumed.step, "losses": resumed.train()}
    resumed = one_process(tmp, "two_fsdp_to_one", resume=tmp / "two_fsdp" / "step-000000003")
    results["two_fsdp_to_one"] = {"start": resumed.step, "losses": resumed.train()}
    return uninterrupted, results, tmp


def test_two_processes_train_as_one(runs):
    uninterrupted, results, tmp = runs
    assert results["two"]["data_parallel"] == "DistributedDataParallel"
    assert results["two"]["losses"] == pytest.approx(uninterrupted, abs=TOL)
    step = tmp / "two" / "step-000000003"  # dense files only: no per-rank optimizer state
    assert (step / "model.safetensors").exists() and (step / "ema.safetensors").exists()
    assert (step / "optimizer" / ".metadata").exists()
    assert results["two_fsdp"]["data_parallel"] == "FSDPSTDiT2"  # FSDP2 shards the model in place
    assert results["two_fsdp"]["losses"] == pytest.approx(uninterrupted, abs=TOL)


@pytest.mark.parametrize("case", ["two_to_one", "one_to_two_zero", "one_to_two_tp", "two_fsdp_to_one",
                                  "one_to_two_fsdp"])
def test_resume_on_another_layout_continues_the_uninterrupted_run(runs, case):
    uninterrupted, results, _ = runs
    assert results[case]["start"] == 3
    assert results[case]["losses"] == pytest.approx(uninterrupted[3:], abs=TOL)
