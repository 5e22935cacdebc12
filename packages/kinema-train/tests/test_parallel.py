"""DP=2 (DDP, and DDP with ZeRO-1), TP=2 and SP=2 (torchrun, 2 CPU processes, gloo) against one process on the
same global batch."""

import json
from pathlib import Path

import pytest
from two_processes import run_on_two_processes

CASES = [(m, layout) for m in ("STDiT", "STDiT2") for layout in ("dp", "tp", "sp")] + [("STDiT2", "dp_zero"),
                                                                                     ("STDiT2", "fsdp")]
TOL = 1e-5


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    run_on_two_processes(Path(__file__).with_name("parallel_worker.py"), str(out),
                         *[f"{m}:{layout}" for m, layout in CASES])
    return {f.name: json.loads(f.read_text()) for f in out.glob("*.json")}


@pytest.mark.parametrize("model,layout", CASES)
def test_same_loss_and_gradients_as_one_process(results, model, layout):
    for rank in (0, 1):
        r = results[f"{model}-{layout}.rank{rank}.json"]
        assert r["grad_names_match"]
        assert r["zero_grads"] == []  # every parameter is exercised, so the comparison means something
        assert abs(r["loss"] - r["ref_loss"]) < TOL
        assert r["max_grad_err"] < TOL and r["max_grad"] > 1e-3
        expected_local = r["global_batch"] // 2 if layout in ("dp", "dp_zero", "fsdp") else r["global_batch"]
        # DDP averages over data x context ranks (dp and sp here); TP alone has one such rank; FSDP2 shards
        # the model in place (its class becomes FSDP<model>)
        expected = {"tp": "STDiT2" if model == "STDiT2" else "STDiT", "fsdp": "FSDPSTDiT2"}
        assert r["data_parallel"] == expected.get(layout, "DistributedDataParallel")
        assert r["local_batch"] == expected_local
        if layout in ("dp_zero", "fsdp"):
            assert r["max_weight_err"] < TOL
        if layout in ("tp", "sp"):  # the dense, upstream-named layout survives sharding
            assert r["state_keys_match"]
            assert r["dense_weight_err"] == 0.0 and r["local_roundtrip_err"] == 0.0
        if layout == "tp":
            assert "1 attention heads cannot be split over 2 tensor-parallel ranks" in r["indivisible_heads_error"]


@pytest.mark.parametrize("model", ["STDiT", "STDiT2"])
def test_sequence_parallel_refuses_a_backend_without_context_parallel_support(results, model):
    for rank in (0, 1):
        assert results[f"{model}-sp.rank{rank}.json"]["temporal_attention"] == ["SequenceParallelAttention"]
        r = results[f"{model}-sp.rank{rank}.json"]["sp_refusals"]
        assert r["switch_left_model_unchanged"]
        for message in (r["switch"], r["apply"]):
            assert message is not None and "'no-context-parallel'" in message and "context parallel" in message
            assert "sdpa" in message and "\n" not in message
