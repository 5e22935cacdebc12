"""Each sampled video gets a JSON sidecar; `kinema sample --from-sidecar` makes the same frames again."""

import json
import shutil

import pytest
import torch

from sample_runner import assert_one_line_error, kinema

FAST = ["--steps", "2", "--num-frames", "5"]


@pytest.fixture
def written_frames(monkeypatch):
    """The exact uint8 frames `kinema sample` hands to the video writer, by file name."""
    import kinema.core.video as video

    frames, write = {}, video.write_video

    def capture(path, clip, fps, **kwargs):
        frames[str(path).rsplit("/", 1)[-1]] = clip.clone()
        return write(path, clip, fps, **kwargs)

    monkeypatch.setattr(video, "write_video", capture)
    return frames


def test_from_sidecar_makes_the_same_frames(tmp_path, written_frames):
    run = kinema("sample", "-p", "a red circle moving right", "-p", "a blue square moving up", "-p",
                 "a green triangle moving left", "--batch-size", "2", "--seed", "7", "-o", "out.mp4", *FAST,
                 cwd=tmp_path)
    assert run.exit_code == 0, run.output
    for name in ("out_0", "out_1", "out_2"):
        assert (tmp_path / f"{name}.mp4").is_file() and (tmp_path / f"{name}.json").is_file()

    # a video from the middle of a batch, and one from the second batch
    for name in ("out_1", "out_2"):
        again = kinema("sample", "--from-sidecar", f"{name}.json", "-o", f"again_{name}.mp4", cwd=tmp_path)
        assert again.exit_code == 0, again.output
        assert torch.equal(written_frames[f"again_{name}.mp4"], written_frames[f"{name}.mp4"]), name
        assert not (tmp_path / f"again_{name}_0.mp4").exists()  # only the sidecar's own video is written

    # options on the command line override the sidecar's: another seed, other frames
    other = kinema("sample", "--from-sidecar", "out_2.json", "--seed", "8", "-o", "other.mp4", cwd=tmp_path)
    assert other.exit_code == 0, other.output
    assert not torch.equal(written_frames["other.mp4"], written_frames["out_2.mp4"])
    assert json.loads((tmp_path / "other.json").read_text())["seed"] == 8


def test_the_sidecar_says_how_the_video_was_made(tmp_path):
    run = kinema("sample", "a red circle", "-o", "clip.mp4", "--negative-prompt", "blurry", "--cfg", "3.5",
                 "--fps", "12", "--scheduler", "rflow", "--seed", "3", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    record = json.loads((tmp_path / "clip.json").read_text())
    expected = {"prompt": "a red circle", "negative_prompt": "blurry", "seed": 3, "steps": 2, "guidance_scale": 3.5,
                "scheduler": "rflow", "height": 32, "width": 32, "num_frames": 5, "fps": 12.0, "dtype": "float32",
                "device": "cpu", "video": "clip.mp4", "kinema_sample_version": "0.1.0"}
    assert {k: record[k] for k in expected} == expected
    assert record["model"].endswith("default_model") and record["model_hash"].startswith("sha256:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json", "clip.mp4"]  # no temporary files left


def test_the_model_hash_follows_configs_and_weights(tmp_path):
    from kinema.sample.cli import DEFAULT_MODEL_DIR
    from kinema.sample.sidecar import model_fingerprint

    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    assert model_fingerprint(copy) == model_fingerprint(DEFAULT_MODEL_DIR)
    weights = copy / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last MB is hashed
    weights.write_bytes(bytes(data))
    changed = model_fingerprint(copy)
    assert changed != model_fingerprint(DEFAULT_MODEL_DIR)
    (copy / "scheduler" / "scheduler_config.json").write_text('{"shift": 1.0}')
    assert model_fingerprint(copy) != changed


def test_a_hand_edited_sidecar_is_checked_like_the_options(tmp_path):
    run = kinema("sample", "a cat", "-o", "a.mp4", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    record = json.loads((tmp_path / "a.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**record, "guidance_scale": float("nan")}))
    assert_one_line_error(kinema("sample", "--from-sidecar", "bad.json", cwd=tmp_path), "bad.json", "cfg",
                          "finite")
    (tmp_path / "grid.json").write_text(json.dumps({"format": "kinema-sample/1", "grid": ["a.mp4"]}))
    assert_one_line_error(kinema("sample", "--from-sidecar", "grid.json", cwd=tmp_path), "grid", "a.mp4")
