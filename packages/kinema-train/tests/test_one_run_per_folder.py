"""A run folder holds one run: a second run is refused (or moves the first aside), ``latest`` always names a
step that exists, and a metrics.csv cut short never blocks a resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tiny import tiny_config

import kinema.train.trainer as trainer_module
from kinema.core import KinemaError
from kinema.core.cli import build_cli
from kinema.train import checkpoint as ckpt
from kinema.train.metrics import FIELDS, MetricsLogger
from kinema.train.trainer import Trainer


def _train(folder, **sections) -> Trainer:
    trainer = Trainer(tiny_config(folder, "STDiT", **sections))
    trainer.train()
    return trainer


def _csv_steps(folder) -> list[int]:
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == list(FIELDS)
    return [int(r.split(",")[0]) for r in rows[1:]]


def _latest_exists(folder) -> bool:
    return (folder / (folder / "latest").read_text().strip() / "state.json").is_file()


def test_a_second_run_in_a_folder_is_refused_before_any_model_is_built(tmp_path, monkeypatch):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 6}, checkpoint={"every": 3, "keep": 3})
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(trainer_module, "build_model", no_model)
    with pytest.raises(KinemaError) as caught:
        Trainer(tiny_config(run, "STDiT", optim={"max_steps": 2}, checkpoint={"every": 1, "keep": 3}))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"checkpoint.dir={str(run)!r} already holds a run (")
    for choice in ("checkpoint.resume=latest", "choose a new checkpoint.dir", "checkpoint.overwrite=true"):
        assert choice in text
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before  # nothing touched
    assert _csv_steps(run) == [1, 2, 3, 4, 5, 6]
    monkeypatch.undo()

    # resuming from a checkpoint of another folder into this one would mix them too
    other = tmp_path / "other"
    _train(other, optim={"max_steps": 3})
    with pytest.raises(KinemaError, match="already holds a run .*instead of"):
        Trainer(tiny_config(run, "STDiT", checkpoint={"resume": str(other / "step-000000003")}))


def test_the_cli_refusal_is_one_line_and_check_reports_it(tmp_path):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 3})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(run, "STDiT").to_dict()))
    for extra in ([], ["--check"]):
        result = CliRunner().invoke(build_cli(), ["train", str(path), "optim.max_steps=2", *extra])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: checkpoint.dir={str(run)!r} already holds a run")


def test_overwrite_moves_the_old_run_aside_and_starts_over(tmp_path):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 6}, checkpoint={"every": 3})
    with pytest.warns(UserWarning, match="moved to .*replaced-"):
        _train(run, optim={"max_steps": 2}, checkpoint={"every": 1, "overwrite": True})
    aside = [p for p in run.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1
    old = aside[0]
    assert (old / "latest").read_text() == "step-000000006" and _latest_exists(old)
    assert _csv_steps(old) == [1, 2, 3, 4, 5, 6]
    assert yaml.safe_load((old / "config.yaml").read_text())["optim"]["max_steps"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["max_steps"] == 2
    assert sorted(p.name for p in run.glob("step-*")) == ["step-000000001", "step-000000002"]
    assert _csv_steps(run) == [1, 2] and _latest_exists(run)
    resumed = Trainer(tiny_config(run, "STDiT", optim={"max_steps": 3}, checkpoint={"resume": "latest"}))
    assert resumed.step == 2 and len(resumed.train()) == 1


def test_a_run_stopped_before_its_first_checkpoint_is_not_offered_for_resuming(tmp_path):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 2}, checkpoint={"every": 100})  # logs, and a checkpoint only at the end
    (run / "latest").unlink()  # as if stopped before it
    for step in run.glob("step-*"):
        shutil.rmtree(step)
    with pytest.raises(KinemaError) as caught:
        Trainer(tiny_config(run, "STDiT", optim={"max_steps": 2}))
    text = str(caught.value)
    assert "saved no checkpoint" in text and "metrics.csv" in text and "checkpoint.overwrite=true" in text
    assert "resume=latest" not in text
    with pytest.raises(KinemaError, match="no checkpoint to resume"):
        Trainer(tiny_config(run, "STDiT", checkpoint={"resume": "latest"}))
    with pytest.warns(UserWarning, match="moved to .*replaced-"):
        _train(run, optim={"max_steps": 2}, checkpoint={"every": 1, "overwrite": True})
    (old,) = run.glob("replaced-*")
    assert _csv_steps(old) == [1, 2] and _csv_steps(run) == [1, 2] and _latest_exists(run)


def test_overwrite_and_resume_together_are_refused():
    from kinema.train.config import load_config

    with pytest.raises(KinemaError, match="checkpoint.resume='latest' and checkpoint.overwrite=true contradict"):
        load_config(None, ["checkpoint.resume=latest", "checkpoint.overwrite=true"])


def test_pruning_never_removes_the_step_latest_names(tmp_path):
    """Resumed from an earlier step of the same folder, the saves of the new branch sort before the old run's
    last step: pruning by name alone deleted the step just saved, and `latest` named a missing folder."""
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 6}, checkpoint={"every": 3, "keep": 5})  # steps 3 and 6
    resumed = Trainer(tiny_config(run, "STDiT", optim={"max_steps": 5},
                                  checkpoint={"every": 1, "keep": 1, "resume": str(run / "step-000000003")}))
    resumed.train()
    assert (run / "latest").read_text() == "step-000000005" and _latest_exists(run)
    assert sorted(p.name for p in run.glob("step-*")) == ["step-000000005", "step-000000006"]
    assert Trainer(tiny_config(run, "STDiT", checkpoint={"resume": "latest"})).step == 5


def test_resaving_a_step_never_deletes_the_folder_latest_names(tmp_path, monkeypatch):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 3})
    trainer = Trainer(tiny_config(run, "STDiT", checkpoint={"resume": "latest"}))
    removed = []
    real_rmtree = ckpt.shutil.rmtree

    def watching_rmtree(path, *args, **kwargs):
        removed.append((Path(path).name, (run / "latest").read_text().strip()))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(ckpt.shutil, "rmtree", watching_rmtree)
    trainer.save()  # step 3 again: the folder is replaced whole
    assert removed and all(name != latest for name, latest in removed), removed
    assert _latest_exists(run) and not list(run.glob(".old-step-*"))


@pytest.mark.parametrize("content", ["", "step,loss,gr", "step,loss,grad_norm,lr,samples_per_s,tokens_per_s,epoch\n"
                                     "1,0.5,1.0,0.001,10,100,0\n2,0.4,1.0,0.001,10,100,0\n3,0.3,1.0,0.00",
                                     "1,0.5\x00\x00"])
def test_a_metrics_csv_cut_short_keeps_its_whole_rows(tmp_path, content):
    (tmp_path / "metrics.csv").write_text(content)
    MetricsLogger(tmp_path, True, None, False, 10, start_step=6).close()
    expected = [1, 2] if content.count("\n") > 1 else []
    assert _csv_steps(tmp_path) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temp file left


def test_the_metrics_rewrite_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    import kinema.train.metrics as metrics

    text = "step,loss,grad_norm,lr,samples_per_s,tokens_per_s,epoch\n1,0.5,1.0,0.001,10,100,0\n"
    (tmp_path / "metrics.csv").write_text(text)

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        MetricsLogger(tmp_path, True, None, False, 10, start_step=0)
    assert (tmp_path / "metrics.csv").read_text() == text


def test_an_empty_metrics_csv_does_not_block_resume(tmp_path):
    run = tmp_path / "r"
    _train(run, optim={"max_steps": 3})
    (run / "metrics.csv").write_text("")  # what a kill during the rewrite on resume used to leave
    resumed = Trainer(tiny_config(run, "STDiT", optim={"max_steps": 5}, checkpoint={"resume": "latest"}))
    assert len(resumed.train()) == 2
    assert _csv_steps(run) == [4, 5]
