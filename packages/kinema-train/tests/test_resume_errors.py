"""A checkpoint that cannot be resumed is one line naming it, what is wrong and the fix."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from tiny import MODELS, tiny_config

import kinema.train.trainer as trainer_module
from kinema.core import KinemaError
from kinema.core.cli import build_cli
from kinema.train.trainer import Trainer

STEP = "step-000000003"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-step tiny STDiT2 run with one checkpoint."""
    folder = tmp_path_factory.mktemp("run")
    Trainer(tiny_config(folder, "STDiT2", optim={"max_steps": 3})).train()
    return folder


def _check(tmp_path, cfg) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    result = CliRunner().invoke(build_cli(), ["train", str(path), "--check"])
    assert result.exit_code == 1, result.output
    return result.output.strip().splitlines()


def test_a_missing_model_file_is_named_before_any_model_is_built(run, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in (run / STEP).iterdir():
        if item.name != "model.safetensors":
            (broken / item.name).symlink_to(item)
    monkeypatch.setattr(trainer_module, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    cfg = tiny_config(tmp_path / "new", "STDiT2", checkpoint={"resume": str(broken)})
    with pytest.raises(KinemaError) as caught:
        Trainer(cfg)
    assert str(caught.value) == (f"checkpoint {broken} is incomplete (no model.safetensors); resume from another "
                                 "step-* folder (checkpoint.resume=<folder>)")
    monkeypatch.undo()
    lines = _check(tmp_path, cfg)
    assert lines == [f"Error: checkpoint.resume={str(broken)!r}: checkpoint {broken} is incomplete (no "
                     "model.safetensors); resume from another step-* folder (checkpoint.resume=<folder>)"]


def test_other_model_sizes_name_the_first_parameters_that_differ(run, tmp_path):
    wider = {"kwargs": {**MODELS["STDiT2"]["kwargs"], "hidden_size": 96}}
    cfg = tiny_config(tmp_path / "new", "STDiT2", model=wider, checkpoint={"resume": str(run / STEP)})
    with pytest.raises(KinemaError) as caught:
        Trainer(cfg)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 1200
    assert text.startswith(f"checkpoint {run / STEP} does not fit this model: ")
    assert "parameter shapes differ (ar_embedder.mlp.0.bias [16] in the checkpoint, [32] here;" in text
    assert "(saved with hidden_size=48; this model has hidden_size=96)" in text
    assert text.endswith("or start a new run from its weights with model.pretrained")
    assert "set model.name and model.kwargs as the run that saved it" in text
    assert any(line.startswith(f"Error: checkpoint {run / STEP} does not fit this model: 81 parameter shapes")
               and "this model has hidden_size=96" in line for line in _check(tmp_path, cfg))

    shallower = {"kwargs": {**MODELS["STDiT2"]["kwargs"], "depth": 1}}
    cfg = tiny_config(tmp_path / "new", "STDiT2", model=shallower, checkpoint={"resume": str(run / STEP)})
    with pytest.raises(KinemaError, match=r"does not fit this model: \d+ it has that this model lacks \(blocks\.1\."):
        Trainer(cfg)


def test_latest_naming_a_missing_step_is_one_line(run, tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "latest").write_text("step-000000009")
    with pytest.raises(KinemaError, match=r"latest names step-000000009, which does not exist; set "
                                          r"checkpoint.resume to one of the step-\* folders in "):
        Trainer(tiny_config(folder, "STDiT2", checkpoint={"resume": "latest"}))
