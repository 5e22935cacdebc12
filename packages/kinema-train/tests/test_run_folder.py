"""A run folder tells its story: config, log, metrics, held-out curve and sample videos in TensorBoard and wandb."""

import re

import pytest
import yaml
from click.testing import CliRunner
from tiny import tiny_config
from trackers_readback import tensorboard_events, wandb_history

from kinema.core import KinemaError
from kinema.core.video import read_video
from kinema.train.cli import train_command
from kinema.train.config import load_config
from kinema.train.trainer import run


@pytest.fixture(scope="module")
def dit_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    folder = tmp_path_factory.mktemp("dit-run")
    cfg = tiny_config(folder, optim={"lr": 1e-3, "max_steps": 4, "seed": 0, "ema_decay": 0.5},
                      logging={"every": 1, "progress": False, "tensorboard": True, "wandb": True,
                               "wandb_mode": "offline", "eval_every": 2, "sample_every": 2, "sample_steps": 2},
                      checkpoint={"dir": str(folder), "every": 4})
    try:
        run(cfg)
    finally:
        mp.undo()
    return folder, cfg


def test_the_run_folder_holds_the_effective_config_and_a_timestamped_log(dit_run):
    folder, cfg = dit_run
    assert load_config(folder / "config.yaml").to_dict() == cfg.to_dict()
    log = (folder / "train.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    assert re.match(stamp + "starting at step 0 of 4: task diffusion", log[0])
    assert [line.split(" ", 2)[2] for line in log if "eval at step" in line][0].startswith("eval at step 2: eval/loss=")
    assert re.match(stamp + "trained to step 4", log[-1])
    assert (folder / "metrics.csv").read_text().count("\n") == 5  # header + 4 steps


def test_tensorboard_has_the_held_out_curve_and_sample_videos(dit_run):
    folder, cfg = dit_run
    events = tensorboard_events(folder)
    held_out = events.Scalars("eval/loss")
    assert [e.step for e in held_out] == [2, 4] and all(0 < e.value < 10 for e in held_out)
    assert [e.step for e in events.Scalars("eval/loss_ema")] == [2, 4]
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    for i in range(len(cfg.logging.sample_prompts)):
        gifs = events.Images(f"samples/{i}")
        assert [e.step for e in gifs] == [2, 4]
        assert gifs[0].encoded_image_string[:6] == b"GIF89a" and (gifs[0].width, gifs[0].height) == (16, 16)


def test_sample_videos_are_mp4_files_of_the_training_clip_size(dit_run):
    folder, cfg = dit_run
    for step in (2, 4):
        files = sorted((folder / "samples" / f"step-{step:09d}").glob("*.mp4"))
        assert [f.name for f in files] == ["0.mp4", "1.mp4"]
        assert read_video(files[0]).frames.shape == (4, 16, 16, 3)


def test_the_offline_wandb_run_has_the_scalars_the_held_out_loss_and_the_videos(dit_run):
    folder, cfg = dit_run
    rows = wandb_history(folder)
    assert [r["_step"] for r in rows] == [1, 2, 3, 4]
    tb = {e.step: e.value for e in tensorboard_events(folder).Scalars("eval/loss")}
    assert {r["_step"]: r["eval/loss"] for r in rows if "eval/loss" in r} == pytest.approx(tb, rel=1e-6)
    videos = [r[f"samples/{i}/path"] for r in rows for i in range(2) if f"samples/{i}/path" in r]
    assert len(videos) == 4
    (run_dir,) = (folder / "wandb").glob("offline-run-*")
    for path in videos:
        assert read_video(run_dir / "files" / path).frames.shape == (4, 16, 16, 3)
    assert rows[1]["samples/0/caption"] == "a red square moving to the right (seed 0)"


def test_the_same_prompts_and_seeds_give_the_same_samples_at_a_later_step_with_frozen_weights(tmp_path):
    # at lr 1e-30 the fp32 weights do not move, so fixed prompts and seeds must give identical videos
    cfg = tiny_config(tmp_path, optim={"lr": 1e-30, "max_steps": 2, "seed": 0, "ema_decay": 0.0},
                      logging={"every": 1, "progress": False, "sample_every": 1, "sample_steps": 2},
                      checkpoint={"dir": str(tmp_path), "every": 2})
    run(cfg)
    first, second = (read_video(tmp_path / "samples" / f"step-{s:09d}" / "0.mp4").frames for s in (1, 2))
    assert (first == second).all()


def test_eval_every_without_a_hold_out_fails_before_training(tmp_path):
    from kinema.core import KinemaError

    cfg = tiny_config(tmp_path, data={"holdout": 0}, logging={"eval_every": 2, "progress": False})
    with pytest.raises(KinemaError, match=r"logging.eval_every=2 needs held-out samples: set data.holdout > 0"):
        run(cfg)
    assert not (tmp_path / "metrics.csv").exists()


def test_print_config_prints_the_effective_config_and_exits(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "STDiT2-S/2"}, "logging": {"wandb": True}}))
    res = CliRunner().invoke(train_command, [str(path), "--print-config", "optim.lr=3e-4", "task=vae"])
    assert res.exit_code == 0, res.output
    printed = yaml.safe_load(res.output)
    assert printed["task"] == "vae" and printed["optim"]["lr"] == 3e-4 and printed["logging"]["wandb"] is True
    assert printed["logging"]["eval_every"] == 0 and printed["vae_loss"]["kl_weight"] == 1e-6
    assert load_config(path, ["optim.lr=3e-4", "task=vae"]).to_dict() == printed
    assert not (tmp_path / "outputs").exists()
    bad = CliRunner().invoke(train_command, [str(path), "--print-config", "logging.wandbb=true"])
    assert bad.exit_code != 0 and "logging.wandbb" in str(bad.exception)


def test_help_names_the_config_sections_and_where_they_are_documented():
    res = CliRunner().invoke(train_command, ["--help"])
    assert res.exit_code == 0
    for section in ("task", "model", "vae", "text_encoder", "scheduler", "data", "optim", "parallel", "checkpoint",
                    "logging", "vae_loss"):
        assert re.search(rf"^\s+{section}\s", res.output, re.M), section
    assert "README" in res.output and "--print-config" in res.output


def test_a_missing_tracker_is_named_before_the_run_folder_is_touched(tmp_path, monkeypatch):
    import importlib.util

    from kinema.train.trainer import Trainer

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    cfg = tiny_config(tmp_path / "run", "STDiT2", logging={"tensorboard": True})
    with pytest.raises(KinemaError, match=r"pip install 'kinema-train\[tensorboard\]'"):
        Trainer(cfg)
    assert not (tmp_path / "run").exists()  # nothing half-started blocks the next run in this folder
