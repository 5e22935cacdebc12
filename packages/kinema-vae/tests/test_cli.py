import json
import shutil

from click.testing import CliRunner
from conftest import tiny_autoencoder_kl



def test_reconstruct_writes_videos_and_prints_a_table(cli, vae_dir, clips, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for clip in clips[:2]:
        shutil.copy(clip, src / clip.name)
    res = CliRunner().invoke(cli, ["vae", "reconstruct", str(src), "-o", str(tmp_path / "out"), "--vae", str(vae_dir),
                                   "--frames", "8", "--resolution", "32", "--ext", ".webp"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(c.stem + ".webp" for c in clips[:2])
    lines = res.output.strip().splitlines()
    assert "8 frames is not 1+4k; trimmed to 5 frames" in res.output
    assert lines[-4].split() == ["clip", "psnr", "ssim"] and lines[-1].startswith("mean")

    ev = CliRunner().invoke(cli, ["vae", "eval", str(src), "--reconstructed", str(tmp_path / "out"),
                                  "--frames", "0", "--resolution", "32"])
    assert ev.exit_code == 0, ev.output
    assert ev.output.strip().splitlines()[-1].startswith("mean")


def test_eval_reconstructs_in_memory(cli, vae_dir, clips):
    res = CliRunner().invoke(cli, ["vae", "eval", str(clips[0]), "--vae", str(vae_dir), "--frames", "9",
                                   "--resolution", "32", "--tiling"])
    assert res.exit_code == 0, res.output
    assert clips[0].name in res.output and "mean" in res.output


def test_unreadable_and_truncated_videos_name_the_file(cli, vae_dir, clips, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    res = CliRunner().invoke(cli, ["vae", "eval", str(bad), "--vae", str(vae_dir)])
    assert res.exit_code != 0 and "broken.mp4" in res.output and "Traceback" not in res.output
    cut = tmp_path / "cut.webp"
    cut.write_bytes(clips[0].read_bytes()[:2000])
    res = CliRunner().invoke(cli, ["vae", "eval", str(cut), "--vae", str(vae_dir), "--resolution", "32"])
    assert res.exit_code != 0 and "cut.webp" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["vae", "eval", str(clips[0]), "--vae", str(vae_dir), "--frames", "100000"])
    assert res.exit_code != 0 and clips[0].name in res.output and "frames" in res.output


def test_inflate_and_missing_vae_errors(cli, clips, tmp_path):
    tiny_autoencoder_kl().save_pretrained(tmp_path / "sd")
    res = CliRunner().invoke(cli, ["vae", "inflate", str(tmp_path / "sd"), "-o", str(tmp_path / "video")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "video" / "config.json").read_text())
    assert cfg["_class_name"] == "CausalVideoVAE" and cfg["attn_impl"] == "fixed"
    res = CliRunner().invoke(cli, ["vae", "eval", str(clips[0]), "--vae", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "does not exist" in res.output


def test_train_command_checks_its_options_before_training(cli, tmp_path):
    res = CliRunner().invoke(cli, ["vae", "train", str(tmp_path), "-o", str(tmp_path / "out"), "--init", "x",
                                   "--lr", "nan"])
    assert res.exit_code != 0 and "--lr" in res.output
    res = CliRunner().invoke(cli, ["vae", "train", str(tmp_path), "-o", str(tmp_path / "out")])
    assert res.exit_code != 0 and "give exactly one of --init VAE_FOLDER or --config CONFIG.json" in res.output
    assert not (tmp_path / "out").exists()


def test_train_command_without_kinema_train_says_what_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "kinema.train.trainer", None)  # as if it were not installed
    res = CliRunner().invoke(cli, ["vae", "train", str(tmp_path), "-o", str(tmp_path / "out"), "--init", "x"])
    assert res.exit_code != 0 and "pip install kinema-train" in res.output
