import pytest
from click.testing import CliRunner

from kinema.core import KinemaError
from kinema.train.config import load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: STDiT-S/2\n  kwargs: {depth: 2}\noptim:\n  lr: 1e-4\n")
    cfg = load_config(path, ["optim.max_steps=7", "model.kwargs.hidden_size=64", "parallel.tensor=2"])
    assert cfg.model.name == "STDiT-S/2" and cfg.model.kwargs == {"depth": 2, "hidden_size": 64}
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # "1e-4" is a string in YAML 1.1
    assert cfg.optim.max_steps == 7 and cfg.parallel.tensor == 2


def test_unknown_key_lists_the_valid_keys(tmp_path):
    with pytest.raises(KinemaError, match=r"unknown config key optim\.learning_rate; valid keys in optim: lr, betas"):
        load_config(None, ["optim.learning_rate=1"])
    with pytest.raises(KinemaError, match=r"unknown config key modle; valid keys: model, vae, text_encoder"):
        load_config(None, ["modle.name=x"])


def test_bad_values_are_named():
    with pytest.raises(KinemaError, match="optim.max_steps='many' must be a int"):
        load_config(None, ["optim.max_steps=many"])
    with pytest.raises(KinemaError, match="data.source='web'"):
        load_config(None, ["data.source=web"])
    with pytest.raises(KinemaError, match="key.sub=value"):
        load_config(None, ["optim.lr"])


def test_cli_reports_config_errors_without_traceback(tmp_path):
    from kinema.core.cli import build_cli

    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  learnig_rate: 1\n")
    result = CliRunner().invoke(build_cli(), ["train", str(path)])
    assert result.exit_code != 0
    assert "unknown config key optim.learnig_rate; valid keys in optim: lr" in result.output
    assert "Traceback" not in result.output


def test_a_sampler_named_as_the_training_scheduler_is_refused_before_the_model_is_built(tmp_path):
    from tiny import tiny_config

    from kinema.train.trainer import Trainer

    with pytest.raises(KinemaError, match="scheduler.name=ddim is a sampler .*iddpm .* or rflow"):
        Trainer(tiny_config(tmp_path, "STDiT2", scheduler={"name": "ddim"}))
