"""The VAE commands refuse bad numbers and output paths in one line, before loading or encoding anything."""

import json
import os
import shutil

import pytest
from click.testing import CliRunner
from conftest import tiny_causal_vae

from kinema.vae import output_paths


def _error_line(res) -> str:
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


# a VAE folder that does not exist: had a check come after loading, the error would be about it instead
MISSING_VAE = "/nonexistent/vae"


@pytest.mark.parametrize("command, option, value, expected", [
    ("reconstruct", "--micro-batch-size", "0", "it must be >= 1"),
    ("reconstruct", "--frames", "-1", "it must be >= 0"),
    ("reconstruct", "--resolution", "-256", "it must be >= 0"),
    ("reconstruct", "--resolution", "8", "use 0 to keep each clip's size, or at least 16"),
    ("reconstruct", "--frames", "1.5", "is not a whole number"),
    ("eval", "--micro-batch-size", "0", "it must be >= 1"),
    ("eval", "--frames", "-3", "it must be >= 0"),
    ("eval", "--resolution", "12", "use 0 to keep each clip's size, or at least 16"),
    ("calibrate", "--clips", "0", "it must be >= 1"),
    ("calibrate", "--frames", "0", "it must be >= 1"),
    ("calibrate", "--resolution", "-8", "it must be >= 8"),
])
def test_bad_numbers_name_value_option_and_fix(cli, clips, tmp_path, command, option, value, expected):
    args = ["vae", command, str(clips[0]), "--vae", MISSING_VAE, option, value]
    if command == "reconstruct":
        args += ["-o", str(tmp_path / "out.mp4")]
    line = _error_line(CliRunner().invoke(cli, args))
    assert option in line and value in line and expected in line
    assert not (tmp_path / "out.mp4").exists()


def test_calibrate_frames_and_resolution_that_the_vae_cannot_encode_leave_it_untouched(cli, clips, tmp_path):
    vae = tmp_path / "vae"
    tiny_causal_vae().save_pretrained(vae)
    before = (vae / "config.json").read_text()
    line = _error_line(CliRunner().invoke(cli, ["vae", "calibrate", str(clips[0]), "--vae", str(vae),
                                                "--frames", "8", "--resolution", "16"]))
    assert "--frames=8 is not 1+4k frames; use 5 or 9" in line
    line = _error_line(CliRunner().invoke(cli, ["vae", "calibrate", str(clips[0]), "--vae", str(vae),
                                                "--frames", "5", "--resolution", "18"]))
    assert "--resolution=18 is not a multiple of 4; use 16 or 20" in line  # the tiny VAE: 4x4x4
    assert (vae / "config.json").read_text() == before and json.loads(before).get("latents_mean") is None


def test_reconstruct_output_paths_are_checked_first(cli, clips, tmp_path):
    def run(src, out, *extra):
        return _error_line(CliRunner().invoke(cli, ["vae", "reconstruct", str(src), "-o", str(out), "--vae",
                                                    MISSING_VAE, *extra]))

    (tmp_path / "taken.mp4").mkdir()
    assert "is an existing folder where a file is expected" in run(clips[0], tmp_path / "taken.mp4")
    (tmp_path / "file.txt").write_text("x")
    assert "is an existing file where a folder is expected" in run(clips[0].parent, tmp_path / "file.txt")
    line = run(clips[0], tmp_path / "file.txt" / "out.mp4")
    assert "cannot be created" in line and "is a file, not a folder" in line
    assert "cannot write '.avi' videos; use one of .gif, .mp4, .png, .webp" in run(clips[0], tmp_path / "o.avi")
    assert "--ext '.mkv' cannot be written" in run(clips[0], tmp_path / "folder", "--ext", ".mkv")
    assert "a .png holds one frame; use --frames 1" in run(clips[0], tmp_path / "o.png")

    copy = tmp_path / "clip.webp"
    shutil.copy(clips[0], copy)
    assert "is the source clip" in run(copy, copy)
    src = tmp_path / "two"
    src.mkdir()
    shutil.copy(clips[0], src / "same.webp")
    shutil.copy(clips[0], src / "same.gif")  # both would become same.mp4
    line = run(src, tmp_path / "recon")
    assert "would both be written to" in line and "same.mp4" in line
    assert not (tmp_path / "recon").exists()


def test_unwritable_output_folder_is_refused(cli, clips, vae_dir, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # the tests run as root, for whom every folder is writable: stand in a read-only folder
    monkeypatch.setattr(output_paths.os, "access",
                        lambda path, mode: False if os.path.abspath(path) == str(locked) else real_access(path, mode))
    line = _error_line(CliRunner().invoke(cli, ["vae", "reconstruct", str(clips[0]), "-o",
                                                str(locked / "new" / "out.mp4"), "--vae", MISSING_VAE]))
    assert "no write permission in" in line and "locked" in line and "choose another -o" in line
    line = _error_line(CliRunner().invoke(cli, ["vae", "calibrate", str(clips[0]), "--vae", str(vae_dir), "-o",
                                                str(locked / "cal"), "--frames", "5", "--resolution", "16"]))
    assert "no write permission in" in line and "choose another -o" in line
    assert not (locked / "cal").exists()


def test_model_folder_outputs_are_checked_before_the_work(cli, clips, vae_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    line = _error_line(CliRunner().invoke(cli, ["vae", "calibrate", str(clips[0]), "--vae", str(vae_dir), "-o",
                                                str(tmp_path / "file"), "--frames", "5", "--resolution", "16"]))
    assert "is an existing file where a model folder is expected" in line
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "config.json").write_text("{}")  # never read: the -o check comes first
    line = _error_line(CliRunner().invoke(cli, ["vae", "inflate", str(tmp_path / "sd"), "-o",
                                                str(tmp_path / "file")]))
    assert "is an existing file where a model folder is expected" in line
