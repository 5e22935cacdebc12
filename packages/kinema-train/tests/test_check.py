"""`kinema train CONFIG --check`, the loader of model.pretrained, and the caption-truncation warning."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml
from click.testing import CliRunner
from tiny import MODELS, tiny_config

from kinema.core import KinemaError
from kinema.core.cli import build_cli


def _write(tmp_path, cfg) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return str(path)


def test_check_prints_the_effective_config_that_trains_as_is(tmp_path):
    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", "optim.lr=5e-4"])
    assert result.exit_code == 0, result.output
    from kinema.train.config import load_config

    assert yaml.safe_load(result.output) == load_config(path, ["optim.lr=5e-4"]).to_dict()
    assert result.output.rstrip().splitlines()[-1].startswith("# check passed: model STDiT2-S/2")
    assert not (tmp_path / "run").exists()  # nothing trained


def test_check_reports_every_problem_on_one_line_each(tmp_path):
    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    overrides = ["vae.name=sd-vae", "model.kwargs.depht=2", "data.source=table", "data.path=missing.csv",
                 "model.pretrained=nowhere"]
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", *overrides])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == len(result.output.strip().splitlines()) == 4, result.output
    expected = [
        "vae.name='sd-vae' is not registered; registered: causal-video-vae, sd-vae-framewise",
        "model.kwargs has unknown key depht; STDiT2-S/2 takes: ",
        "data.path='missing.csv' does not exist; point it at a CSV/parquet table",
        "model.pretrained='nowhere' does not exist; point it at a model folder",
    ]
    for text in expected:
        assert any(text in e for e in errors), (text, result.output)

    # what the data and text encoder ask of a model that builds
    fixed = ["data.use_image_num=2", "text_encoder.kwargs.max_length=20", "model.kwargs.in_channels=4"]
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", *fixed])
    assert "data.use_image_num=2 needs a joint image-video model (Latte); STDiT2-S/2 is not one" in result.output
    assert "text_encoder.kwargs.max_length=20 but STDiT2-S/2 reads 16 caption tokens" in result.output
    assert "takes 4 channels; name a VAE or set model.kwargs.in_channels=3" in result.output


def test_a_hub_id_is_accepted_only_where_the_component_fetches_one(tmp_path):
    path = _write(tmp_path, tiny_config(tmp_path / "run"))
    t5 = ["text_encoder.name=t5", "text_encoder.kwargs={max_length: 16}"]
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", *t5,
                                              "text_encoder.pretrained=DeepFloyd/t5-v1_1-xxl"])
    assert result.exit_code == 0, result.output  # nothing fetched: the check loads no weights
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", *t5, "text_encoder.pretrained=./t5-xxl"])
    assert "text_encoder.pretrained='./t5-xxl' does not exist and is not a hub id" in result.output
    result = CliRunner().invoke(build_cli(), ["train", path, "--check", "vae.name=causal-video-vae",
                                              "vae.pretrained=LanguageBind/Open-Sora-Plan-v1.0.0"])
    assert "vae.pretrained='LanguageBind/Open-Sora-Plan-v1.0.0' does not exist" in result.output


def test_pretrained_weights_load_into_a_larger_grid_and_from_a_step_folder(tmp_path):
    """A stage on larger clips starts from the previous stage: the fixed position tables follow the new grid."""
    from safetensors.torch import save_file

    from kinema.train.components import build_model
    from kinema.train.config import ModelConfig

    small = ModelConfig(name="STDiT-S/2", kwargs={**MODELS["STDiT"]["kwargs"], "input_size": [4, 8, 8]})
    weights = build_model(small).state_dict()
    (tmp_path / "step-000000010").mkdir()
    save_file(weights, str(tmp_path / "step-000000010" / "model.safetensors"))  # a checkpoint's layout
    large = ModelConfig(name="STDiT-S/2", kwargs={**MODELS["STDiT"]["kwargs"], "input_size": [4, 16, 16]},
                        pretrained=str(tmp_path / "step-000000010"))
    model = build_model(large)
    torch.testing.assert_close(model.final_layer.linear.weight, weights["final_layer.linear.weight"])
    assert model.pos_embed.shape[1] == 64 and weights["pos_embed"].shape[1] == 16
    wider = ModelConfig(name="STDiT-S/2", kwargs={**MODELS["STDiT"]["kwargs"], "hidden_size": 64},
                        pretrained=str(tmp_path / "step-000000010"))
    with pytest.raises(KinemaError, match="does not fit model.kwargs"):
        build_model(wider)


def test_a_truncated_caption_is_reported_once_per_run_and_only_by_the_main_rank(tmp_path):
    from kinema.train.distributed import ParallelContext
    from kinema.train.trainer import Trainer

    short = {"model": {"kwargs": {**MODELS["STDiT2"]["kwargs"], "model_max_length": 8}},
             "text_encoder": {"kwargs": {"max_length": 8, "hidden_size": 32}}}
    for rank, expected in ((0, 1), (1, 0)):
        trainer = Trainer(tiny_config(tmp_path, "STDiT2", **short), ctx=ParallelContext(rank=rank))
        stream = iter(trainer.data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(3):
                trainer.prepare(next(stream)[1], step)
        reported = [str(w.message) for w in caught if "truncated" in str(w.message)]
        assert len(reported) == expected, reported
        assert all("tiny T5 reads at most 8 tokens" in m and "once per run" in m for m in reported)
