"""`kinema sample --dtype`: float32 by default; half precision runs on the CPU (emulated) with a warning."""

import json

import pytest
import torch

from sample_runner import kinema

FAST = ["--steps", "1", "--num-frames", "5"]


@pytest.fixture
def loaded(monkeypatch):
    """The pipelines `kinema sample` loads."""
    from kinema.sample import cli

    pipes, load = [], cli.load_pipeline

    def keep(*args, **kwargs):
        pipe, model = load(*args, **kwargs)
        pipes.append(pipe)
        return pipe, model

    monkeypatch.setattr(cli, "load_pipeline", keep)
    return pipes


def test_float32_by_default_without_a_warning(tmp_path, loaded):
    run = kinema("sample", "a red circle", "-o", "a.mp4", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    assert "warning" not in run.output
    assert loaded[0].transformer.dtype == loaded[0].vae.dtype == torch.float32
    assert json.loads((tmp_path / "a.json").read_text())["dtype"] == "float32"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_runs_on_the_cpu_with_a_warning(tmp_path, loaded, dtype):
    run = kinema("sample", "a red circle", "-o", "a.mp4", "--dtype", dtype, *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    assert f"warning: --dtype {dtype} on the CPU is emulated" in run.output
    assert loaded[0].transformer.dtype == getattr(torch, dtype)
    assert json.loads((tmp_path / "a.json").read_text())["dtype"] == dtype
    assert (tmp_path / "a.mp4").stat().st_size > 0
