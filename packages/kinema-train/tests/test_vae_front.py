"""`kinema vae train`, the front of the shared trainer's VAE task, as a user runs it: on real video clips (the
animated WebP files of comfyui-workflow-templates-media-video, a test dependency), from an inflated VAE folder, to a
run folder whose `vae/` the VAE loader reads; and a brief run that beats the untrained inflation on held-out clips."""

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from diffusers import AutoencoderKL

from kinema.core.cli import build_cli
from kinema.vae import CausalVideoVAE, tiny_config
from kinema.vae.data import load_clip
from kinema.vae.inflate import inflate_autoencoder_kl
from kinema.vae.loading import load_vae
from kinema.vae.metrics import video_metrics


@pytest.fixture(scope="module")
def clips() -> list[Path]:
    import comfyui_workflow_templates_media_video as pkg

    found = sorted(Path(pkg.__file__).parent.rglob("*.webp"))
    assert len(found) > 20, "comfyui-workflow-templates-media-video clips not found"
    return found


def tiny_autoencoder_kl(seed: int = 0) -> AutoencoderKL:
    """A random SD-layout AutoencoderKL; norms and biases perturbed so nothing is trivially zero/one."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=4, layers_per_block=1,
                        latent_channels=4, sample_size=32)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return vae.eval()


def tiny_causal_vae(seed: int = 0) -> CausalVideoVAE:
    torch.manual_seed(seed)
    return CausalVideoVAE.from_config(tiny_config()).eval()


def test_train_command_runs_the_shared_trainer_and_writes_a_vae_folder(clips, tmp_path):
    import yaml

    from kinema.vae.loading import load_vae

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clips[1], data / clips[1].name)
    tiny_causal_vae().save_pretrained(tmp_path / "init")
    args = ["vae", "train", str(data), "-o", str(tmp_path / "out"), "--init", str(tmp_path / "init"), "--steps", "2",
            "--frames", "5", "--resolution", "16", "--lr", "1e-3", "--latent-noise", "0.4", "--sample-every", "1",
            "--progress"]
    res = CliRunner().invoke(build_cli(), args)
    assert res.exit_code == 0, res.output
    assert "train: 100%" in res.stderr and "2/2" in res.stderr
    out = tmp_path / "out"
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert load_vae(out / "vae").config.hidden_size == tiny_causal_vae().config.hidden_size
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["task"] == "vae" and cfg["vae"]["pretrained"] == str(tmp_path / "init")
    assert cfg["optim"]["betas"] == [0.5, 0.9] and cfg["optim"]["lr"] == 1e-3 and cfg["optim"]["weight_decay"] == 0
    assert cfg["vae_loss"]["latent_noise"] == 0.4 and cfg["data"]["image_size"] == [16, 16]
    assert (out / "metrics.csv").read_text().count("\n") == 3 and (out / "step-000000002").is_dir()
    assert sorted(p.name for p in (out / "samples" / "step-000000002").iterdir()) == ["0.mp4"]
    # more steps on the same run folder: --resume continues from its last checkpoint
    res = CliRunner().invoke(build_cli(), args[:8] + ["4"] + args[9:-1] + ["--resume", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "%|" not in res.stderr
    assert "resuming at step 2 of 4" in (out / "train.log").read_text()
    assert (out / "metrics.csv").read_text().count("\n") == 5


def _held_out_metrics(vae, held):
    rows = []
    with torch.no_grad():
        for clip in held:
            recon = vae.reconstruct(clip[None])[0].clamp(-1, 1)
            rows.append(video_metrics((clip.transpose(0, 1) + 1) / 2, (recon.transpose(0, 1) + 1) / 2))
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    data.mkdir()
    for clip in clips[:4]:
        shutil.copy(clip, data / clip.name)
    held = [load_clip(p, 9, 32) for p in clips[-3:]]
    inflate_autoencoder_kl(tiny_autoencoder_kl()).save_pretrained(root / "init")
    before = _held_out_metrics(load_vae(root / "init"), held)
    res = CliRunner().invoke(build_cli(), ["vae", "train", str(data), "-o", str(root / "run"), "--init",
                                           str(root / "init"), "--steps", "30", "--frames", "9", "--resolution", "32",
                                           "--lr", "3e-3", "--sample-every", "0", "--set", "logging.progress=false"])
    assert res.exit_code == 0, res.output
    return root / "run", held, before, _held_out_metrics(load_vae(root / "run" / "vae"), held)


def test_brief_training_beats_the_untrained_inflation_on_held_out_clips(trained):
    run, _, before, after = trained
    import csv

    with open(run / "metrics.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert after["psnr"] > before["psnr"] and after["ssim"] > before["ssim"] + 0.02
    assert (run / "vae" / "config.json").is_file() and not (run / "vae.tmp").exists()




def test_decoder_only_trains_the_decoder_and_keeps_every_latent(clips, tmp_path):
    """`--decoder-only`: a diffusion model trained on the starting VAE's latents can use the new decoder as is."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clips[2], data / clips[2].name)
    tiny_causal_vae().save_pretrained(tmp_path / "init")
    res = CliRunner().invoke(build_cli(), ["vae", "train", str(data), "-o", str(tmp_path / "out"), "--init",
                                           str(tmp_path / "init"), "--decoder-only", "--steps", "3", "--frames", "5",
                                           "--resolution", "16", "--lr", "1e-2", "--latent-noise", "0.4",
                                           "--sample-every", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    before, after = load_vae(tmp_path / "init"), load_vae(tmp_path / "out" / "vae")
    clip = load_clip(clips[2], 5, 16)[None]
    with torch.no_grad():
        assert torch.equal(before.encode_video(clip, sample=False), after.encode_video(clip, sample=False))
        z = before.encode_video(clip, sample=False)
        assert not torch.allclose(before.decode_video(z), after.decode_video(z), atol=1e-3)
    for name, weight in before.state_dict().items():
        assert torch.equal(weight, after.state_dict()[name]) == name.startswith(("encoder.", "quant_conv.")), name


def test_decoder_only_needs_a_trained_vae_to_start_from(clips, tmp_path):
    res = CliRunner().invoke(build_cli(), ["vae", "train", str(tmp_path), "-o", str(tmp_path / "out"), "--config",
                                           str(tmp_path / "vae.json"), "--decoder-only"])
    assert res.exit_code != 0
    assert res.output.strip() == ("Error: --decoder-only keeps a trained encoder: give the VAE folder to start from "
                                  "with --init")
    assert not (tmp_path / "out").exists()


def test_a_finished_run_is_kept_unless_overwrite_moves_it_aside_vae_and_all(clips, tmp_path):
    """A second `kinema vae train` into the same -o is refused in this command's words, before it writes anything;
    --overwrite moves the old run aside with the VAE it trained and its video table, which a new run would otherwise
    replace."""
    for i in (1, 2):
        (tmp_path / f"data{i}").mkdir()
        shutil.copy(clips[i], tmp_path / f"data{i}" / clips[i].name)
    tiny_causal_vae().save_pretrained(tmp_path / "init")
    out = tmp_path / "out"

    def train(data, *extra):
        return CliRunner().invoke(build_cli(), ["vae", "train", str(tmp_path / data), "-o", str(out), "--init",
                                                str(tmp_path / "init"), "--steps", "2", "--frames", "5",
                                                "--resolution", "16", "--lr", "1e-2", "--sample-every", "0",
                                                "--no-progress", *extra])

    assert train("data1").exit_code == 0
    old_vae = (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    old_table = (out / "videos.csv").read_text()
    res = train("data2")
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: -o={str(out)!r} already holds a run (latest, metrics.csv, step-000000001, ...); resume it with "
        "--resume, choose a new -o, or pass --overwrite to move the old run aside and start over"]
    assert (out / "videos.csv").read_text() == old_table  # nothing written
    res = train("data2", "--resume", "--overwrite")
    assert res.exit_code == 1 and "give one of them" in res.output

    res = train("data2", "--overwrite")
    assert res.exit_code == 0, res.output
    (aside,) = out.glob("replaced-*")
    assert f"the previous run in {out} was moved to {aside}" in res.output
    assert (aside / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == old_vae
    assert (aside / "videos.csv").read_text() == old_table  # the old run keeps the videos it was trained on
    assert (aside / "latest").read_text() == "step-000000002" and (out / "latest").read_text() == "step-000000002"
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() != old_vae
    assert clips[2].name in (out / "videos.csv").read_text()
