"""Every config value is checked before any work: one line naming the value, the key and the fix."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from click.testing import CliRunner
from tiny import MODELS, tiny_config

from kinema.core import KinemaError
from kinema.core.cli import build_cli
from kinema.train.config import TrainConfig, load_config
from kinema.train.config_rules import ROOT_RULES, RULES

BAD_VALUES = [
    ("optim.max_steps=1.5", "optim.max_steps=1.5 is not a whole number"),
    ("checkpoint.every=0", "checkpoint.every=0 is out of range: it must be >= 1"),
    ("logging.every=0", "logging.every=0 is out of range: it must be >= 1"),
    ("optim.lr=-1", "optim.lr=-1.0 is out of range: it must be > 0"),
    ("optim.lr=nan", "optim.lr=nan is not a finite number"),
    ("optim.eps=.inf", "optim.eps=inf is not a finite number"),
    ("optim.grad_clip=-0.5", "optim.grad_clip=-0.5 is out of range: it must be >= 0"),
    ("model.kwargs.depth=.nan", "model.kwargs.depth=nan is not a finite number"),
    ("data.bucket_config={'256': {16: [.inf, 2]}}", "data.bucket_config.256.16=inf is not a finite number"),
    ("data.batch_size=-1", "data.batch_size=-1 is out of range: it must be >= 1"),
    ("data.num_workers=-2", "data.num_workers=-2 is out of range: it must be >= 0"),
    ("checkpoint.keep=-1", "checkpoint.keep=-1 is out of range: it must be >= 0"),
    ("optim.seed=-3", "optim.seed=-3 is out of range"),
    ("data.caption_dropout=1.5", "data.caption_dropout=1.5 is out of range: it must be >= 0.0 and <= 1.0"),
    ("optim.min_lr_factor=-0.1", "optim.min_lr_factor=-0.1 is out of range"),
    ("optim.ema_decay=1", "optim.ema_decay=1.0 would never move the EMA"),
    ("optim.betas=[0.9, 1.2]", "optim.betas[1]=1.2 is out of range"),
    ("data.image_size=[16]", "data.image_size=[16] is not a [height, width] pair"),
    ("data.num_frames=true", "data.num_frames=True is not a whole number"),
    ("logging.csv=maybe", "logging.csv='maybe' must be a bool"),
    ("model.name=5", "model.name=5 is not a non-empty string"),
    ("model.kwargs=[1, 2]", "model.kwargs=[1, 2] is not a mapping"),
    ("optim.mixed_precision=fp16", "optim.mixed_precision='fp16' is not one of the choices; use auto or fp32"),
    ("parallel.tensor=0", "parallel.tensor=0 is out of range: it must be >= 1"),
    ("optim.decay_steps=7", "optim.decay_steps=7 must be in [0, optim.max_steps=6]"),
    ("data.num_samples=2", "data.num_samples=2 is less than data.batch_size=4"),
]


def _write(tmp_path, cfg) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return str(path)


@pytest.mark.parametrize("override,message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_value_key_and_fix(tmp_path, override, message):
    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    with pytest.raises(KinemaError) as caught:
        load_config(path, [override])
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert ";" in text or "use " in text  # a fix follows the problem


def test_the_cli_refuses_a_bad_value_before_training(tmp_path):
    """checkpoint.every=0 used to divide by zero after the first step; now nothing starts."""
    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    result = CliRunner().invoke(build_cli(), ["train", path, "checkpoint.every=0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: checkpoint.every=0 is out of range: it must be >= 1; save every N steps, N >= 1 (a run saves at its "
        "end as well)"]
    assert not (tmp_path / "run").exists()


def test_whole_floats_become_counts_and_defaults_pass():
    cfg = load_config(None, ["optim.max_steps=2.0", "data.batch_size=8"])
    assert cfg.optim.max_steps == 2 and isinstance(cfg.optim.max_steps, int)
    assert load_config(None).to_dict() == TrainConfig().to_dict()


def test_every_config_field_has_a_rule():
    for section in dataclasses.fields(TrainConfig):
        default = getattr(TrainConfig(), section.name)
        if not dataclasses.is_dataclass(default):
            assert section.name in ROOT_RULES, section.name
            continue
        missing = [f.name for f in dataclasses.fields(default) if f.name not in RULES.get(section.name, {})]
        assert not missing, f"{section.name}: {missing} have no rule in kinema.train.config_rules.RULES"


def test_nccl_without_cuda_is_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KinemaError, match=r"^parallel.backend='nccl' needs CUDA GPUs .*; use gloo or leave it unset$"):
        load_config(None, ["parallel.backend=nccl"])
    with pytest.raises(KinemaError, match=r"parallel.backend='infiniband' is not one of the choices; use null or gloo"):
        load_config(None, ["parallel.backend=infiniband"])


def test_a_misspelt_model_kwarg_names_the_key_and_the_models_config(tmp_path):
    from kinema.train.trainer import Trainer

    kwargs = {**MODELS["STDiT2"]["kwargs"], "hiden_size": 8}
    cfg = tiny_config(tmp_path / "run", "STDiT2", model={"kwargs": kwargs})
    with pytest.raises(KinemaError) as caught:
        Trainer(cfg)
    text = str(caught.value)
    assert text.startswith("model.kwargs has unknown key hiden_size; STDiT2-S/2 takes: ")
    assert "hidden_size" in text and "num_heads" in text and "qk_norm" in text and "\n" not in text
    assert text.endswith("did you mean model.kwargs.hidden_size?")

    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    for extra in ([], ["--check"]):
        result = CliRunner().invoke(build_cli(), ["train", path, "model.kwargs.hiden_size=8", *extra])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: model.kwargs has unknown key hiden_size; STDiT2-S/2 takes: ")
        assert len(result.output.strip().splitlines()) == 1
