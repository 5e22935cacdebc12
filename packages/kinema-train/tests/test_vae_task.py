"""The VAE on the shared trainer: exact resume after SIGKILL, reconstructions with PSNR/SSIM in the trackers."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from trackers_readback import tensorboard_events

from kinema.core import KinemaError
from kinema.core.video import read_video
from kinema.train.config import from_dict, load_config
from kinema.train.trainer import build_trainer, run
from kinema.vae.causal_vae import tiny_config as tiny_vae_config


def vae_values(folder, **logging) -> dict:
    """A tiny CausalVideoVAE (4x4x4) on 5-frame 16x16 synthetic clips, 6 steps, a checkpoint every 2."""
    return {
        "task": "vae",
        "vae": {"kwargs": tiny_vae_config(hidden_size=8, levels=3)},
        "data": {"source": "synthetic", "num_samples": 8, "holdout": 2, "num_frames": 5, "image_size": [16, 16],
                 "batch_size": 2, "caption_dropout": 0.0},
        "optim": {"lr": 1e-3, "betas": [0.5, 0.9], "ema_decay": 0.0, "max_steps": 6, "seed": 0},
        "vae_loss": {"latent_noise": 0.3},
        "checkpoint": {"dir": str(folder), "every": 2, "keep": 5},
        "logging": {"every": 1, "progress": False, "tensorboard": True, "eval_every": 2, "sample_every": 2,
                    **logging},
    }


def losses(folder) -> list[tuple[int, float]]:
    with open(folder / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_a_vae_run_killed_mid_run_resumes_to_the_same_losses_and_logs_reconstructions(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(from_dict(vae_values(whole)))

    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(vae_values(killed)))
    # a slow save keeps the run busy after its first checkpoint, so the kill lands mid-run
    env = {**os.environ, "KINEMA_TRAIN_SAVE_DELAY": "0.3", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kinema.train", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not (killed / "latest").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "vae").exists()  # it did not finish

    run(load_config(config, ["checkpoint.resume=latest"]))
    assert losses(killed) == losses(whole) and [s for s, _ in losses(whole)] == [1, 2, 3, 4, 5, 6]
    assert "resuming at step" in (killed / "train.log").read_text()

    # original | reconstruction side by side, PSNR and SSIM per evaluation, in TensorBoard and as mp4 files
    events = tensorboard_events(killed)
    for name in ("eval/psnr", "eval/ssim", "eval/rec_loss", "samples/psnr_0", "samples/ssim_1"):
        assert [e.step for e in events.Scalars(name)][-2:] == [4, 6], name
    psnr = [e.value for e in events.Scalars("eval/psnr")]
    assert 0 < psnr[0] < psnr[-1] < 100
    assert all(-1 <= e.value <= 1 for e in events.Scalars("eval/ssim"))
    image = events.Images("samples/0")[-1]
    assert (image.width, image.height) == (32, 16)
    frames = read_video(killed / "samples" / "step-000000006" / "0.mp4").frames
    assert frames.shape == (5, 16, 32, 3)
    clip = build_trainer(from_dict(vae_values(tmp_path / "fresh"))).fixed_clips()[0]
    original = frames[..., :16, :].permute(3, 0, 1, 2).float() / 127.5 - 1
    assert (original - clip).abs().mean() < 0.05  # the left half is the held-out clip (h264 is lossy)


def test_the_trained_vae_is_a_vae_folder_the_loader_reads(tmp_path):
    from kinema.vae.loading import load_vae

    values = vae_values(tmp_path, tensorboard=False, eval_every=0, sample_every=0)
    values["optim"]["max_steps"] = 2
    trainer = run(from_dict(values))
    vae = load_vae(tmp_path / "vae")
    for name, p in trainer.model.vae.state_dict().items():
        assert torch.equal(vae.state_dict()[name], p), name


def test_vae_task_errors_name_the_field_before_training(tmp_path):
    values = vae_values(tmp_path)
    values["data"]["num_frames"] = 6
    with pytest.raises(KinemaError, match=r"data.num_frames=6 does not fit .* use 1 \+ k\*4 frames"):
        build_trainer(from_dict(values))
    values = vae_values(tmp_path)
    values["vae"] = {}
    with pytest.raises(KinemaError, match="task=vae needs the VAE to train: set vae.pretrained"):
        build_trainer(from_dict(values))
    with pytest.raises(KinemaError, match="task='gan' is not a training task"):
        build_trainer(from_dict({**vae_values(tmp_path), "task": "gan"}))
    values = vae_values(tmp_path)
    values["vae_loss"]["decoder_only"] = True  # a VAE built from its config has no trained encoder to keep
    with pytest.raises(KinemaError, match=r"^vae_loss.decoder_only=true keeps a trained encoder: set vae.pretrained"):
        build_trainer(from_dict(values))
    assert not (tmp_path / "metrics.csv").exists()


def test_check_reads_a_vae_config_as_a_vae_task(tmp_path):
    """`kinema train CONFIG --check` on task=vae checks the VAE, its data and its loss, not the diffusion parts."""
    from click.testing import CliRunner

    from kinema.core.cli import build_cli

    config = tmp_path / "vae.yaml"
    config.write_text(yaml.safe_dump(vae_values(tmp_path / "run")))
    ok = CliRunner().invoke(build_cli(), ["train", str(config), "--check"])
    assert ok.exit_code == 0, ok.output
    assert "# check passed: task vae" in ok.output and "STDiT" not in ok.output.splitlines()[-1]
    bad = CliRunner().invoke(build_cli(), ["train", str(config), "--check", "data.num_frames=8"])
    assert bad.exit_code == 1
    assert "data.num_frames=8 does not fit the VAE's 4x temporal compression" in bad.output
    assert "learn RGB pixels" not in bad.output  # the diffusion checks do not run on a VAE config
    assert not (tmp_path / "run").exists()  # a check trains nothing
