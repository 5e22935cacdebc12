"""`kinema sample` end to end on a tiny pipeline folder, checked with ffprobe."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from kinema.core.video import probe_video, read_video, write_video

from kinema.sample.testing import make_tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny"
    make_tiny_pipeline(path)
    return path


def kinema_subprocess(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("KINEMA_PIPELINE", None)
    return subprocess.run([sys.executable, "-m", "kinema.core.cli", "sample", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def kinema(*args, cwd):
    """In-process run of `kinema sample` (the exit code and what the user sees)."""
    from click.testing import CliRunner

    from kinema.core.cli import build_cli

    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(build_cli(), ["sample", *map(str, args)], env={"KINEMA_PIPELINE": None})
    finally:
        os.chdir(old)
    result.stderr_text = result.stderr if result.stderr_bytes is not None else ""
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.output + result.stderr_text)


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=width,height,nb_read_frames,codec_name", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"][0]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian package ffmpeg) is not installed")
def test_writes_a_playable_mp4(model, tmp_path):
    result = kinema_subprocess("a red car on a beach", "-o", "out.mp4", "--model", model, "--steps", "3", "--seed", "1",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "randomly initialised test pipeline" in result.stderr
    stream = ffprobe(tmp_path / "out.mp4")
    assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (32, 32, 4)
    assert stream["codec_name"] == "h264"


def test_prompt_file_batches_references_and_formats(model, tmp_path):
    (tmp_path / "prompts.txt").write_text("a cat\n\na dog\na bird\n")
    write_video(tmp_path / "ref.png", torch.full((1, 32, 32, 3), 200, dtype=torch.uint8), fps=1)
    result = kinema("--prompt-file", "prompts.txt", "-o", "clip.webp", "--model", model, "--steps", "2",
                 "--batch-size", "2", "--scheduler", "ddim", "--reference", "ref.png", "--cfg", "3",
                 "--num-frames", "6", "--fps", "12", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for i in range(3):
        info = probe_video(tmp_path / f"clip_{i}.webp")
        assert (info.num_frames, info.height, info.width) == (6, 32, 32)
    gif = kinema("a cat", "-o", "a.gif", "--model", model, "--steps", "2", "--resolution", "16x24",
              "--loop", "2", "--condition-frame-length", "1", cwd=tmp_path)
    assert gif.returncode == 0, gif.stderr
    assert read_video(tmp_path / "a.gif").frames.shape == (7, 16, 24, 3)


def test_one_frame_writes_a_png(model, tmp_path):
    result = kinema("a cat", "-o", "still.mp4", "--model", model, "--steps", "2", "--num-frames", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_video(tmp_path / "still.png").frames.shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--model", "{model}"], "prompt 0 is empty"),
        (["a cat", "--model", "nowhere"], "no pipeline at 'nowhere'"),
        (["a cat", "--model", "{model}", "--resolution", "999p"], "valid: 144p, 240p"),
        (["a cat", "--model", "{model}", "--aspect-ratio", "5:7", "--resolution", "240p"], "valid height/width"),
        (["a cat", "--model", "{model}", "--scheduler", "eulr"], "available: ddim, ddpm, dpm-solver, euler"),
        (["a cat", "--model", "{model}", "--mask-strategy", "0,0,x", "--reference", "r.png"], "does not exist"),
        (["a cat", "--model", "{model}", "-o", "x.avi"], "use one of .mp4, .webp, .gif"),
    ],
)
def test_bad_input_gets_a_message_not_a_traceback(model, tmp_path, args, message):
    result = kinema(*[a.replace("{model}", str(model)) for a in args], cwd=tmp_path)
    assert result.returncode not in (0, None)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_mask_strategy_names_the_field(model, tmp_path):
    write_video(tmp_path / "r.png", torch.zeros((1, 32, 32, 3), dtype=torch.uint8), fps=1)
    result = kinema("a cat", "--model", model, "--reference", "r.png", "--mask-strategy", "0,0,x", "--steps", "1",
                 cwd=tmp_path)
    assert result.returncode != 0 and "field 3 (ref_start)" in result.stderr
