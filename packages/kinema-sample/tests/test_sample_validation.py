"""`kinema sample` refuses bad input in one line before generating (and `kinema eval adherence`, the demo)."""

import pytest
import torch
from kinema.core import KinemaError
from kinema.core.video import read_video, write_video

from sample_runner import assert_one_line_error, kinema, png_header

FAST = ["--steps", "1", "--num-frames", "5"]


def forbid_generating(monkeypatch):
    """Any call of the pipeline fails the test: refusals must come before generating."""
    from kinema.sample.pipeline import KinemaVideoPipeline

    def fail(*args, **kwargs):
        raise AssertionError("the pipeline ran although the input should have been refused")

    monkeypatch.setattr(KinemaVideoPipeline, "__call__", fail)


@pytest.fixture
def never_generates(monkeypatch):
    forbid_generating(monkeypatch)


@pytest.mark.parametrize("args, needles", [
    (["--cfg", "nan"], ["--cfg", "nan", "finite"]),
    (["--cfg", "inf"], ["--cfg", "inf", "finite"]),
    (["--cfg", "-1"], ["--cfg", ">= 0"]),
    (["--fps", "0"], ["--fps", "> 0"]),
    (["--fps", "nan"], ["--fps", "finite"]),
    (["--seed", str(2**70)], ["--seed", str(2**63 - 1)]),
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--steps", "0"], ["--steps", ">= 1"]),
    (["--steps", str(10**30)], ["--steps", "<= 1000"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--num-frames", "-3"], ["--num-frames"]),
    (["--loop", str(2**64)], ["--loop"]),
    (["--dtype", "float64"], ["--dtype", "float64"]),
])
def test_numbers_are_refused_by_the_parser(tmp_path, never_generates, args, needles):
    assert_one_line_error(kinema("sample", "a cat", "-o", "x.mp4", *args, cwd=tmp_path), *needles)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("device, needles", [
    ("bogus", ["--device bogus", "cpu"]),
    ("cuda:99", ["--device cuda:99"]),
    ("meta", ["--device meta", "cpu"]),
])
def test_devices_are_refused_in_one_line(tmp_path, never_generates, device, needles):
    assert_one_line_error(kinema("sample", "a cat", "--device", device, cwd=tmp_path), *needles)


def test_cuda_on_a_cpu_build_says_what_to_do(tmp_path, never_generates, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    line = assert_one_line_error(kinema("sample", "a cat", "--device", "cuda", cwd=tmp_path))
    assert line == ("Error: --device cuda: this torch build has no CUDA; use --device cpu or install a CUDA build "
                    "of torch")


def test_a_huge_resolution_is_refused_with_the_estimate(tmp_path, never_generates):
    line = assert_one_line_error(kinema("sample", "a cat", "--resolution", "100000x100000", cwd=tmp_path),
                                 "100000x100000", "needs about", "GiB", "available", "--vae-tiling", "--cpu-offload")
    assert "estimate" in line


def test_too_many_frames_are_refused_with_the_estimate(tmp_path, never_generates):
    assert_one_line_error(kinema("sample", "a cat", "--resolution", "1024x1024", "--num-frames", "40001",
                                 cwd=tmp_path), "40001 frames", "needs about", "fewer frames")


def test_the_memory_limit_follows_what_is_available(tmp_path, never_generates, monkeypatch):
    from kinema.sample import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: (1000, "available RAM"))
    assert_one_line_error(kinema("sample", "a cat", *FAST, cwd=tmp_path), "needs about", "0.0 GiB")


def test_estimate_grows_with_size_and_shrinks_with_tiling():
    from kinema.sample import memory
    from kinema.sample.cli import load_pipeline

    pipe, _ = load_pipeline(None, "cpu")
    small = memory.estimate(pipe, 1, 17, 32, 32, True).total
    big = memory.estimate(pipe, 1, 17, 256, 256, True).total
    tiled = memory.estimate(pipe, 1, 129, 1080, 1920, True, vae_tiling=True).total
    untiled = memory.estimate(pipe, 1, 129, 1080, 1920, True).total
    assert small < big and tiled < untiled
    assert memory.estimate(pipe, 2, 17, 256, 256, True).total > big


def test_a_demo_request_inside_the_page_limits_is_refused_before_generating(never_generates):
    from kinema.sample.cli import load_pipeline
    from kinema.sample.demo import Generator, Request

    pipe, _ = load_pipeline(None, "cpu")
    request = Request("a red circle", None, "1080p", "9:16", 129, 30, 2.0, 1)
    with pytest.raises(KinemaError, match="needs about .* GiB .*smaller resolution or fewer frames"):
        Generator(pipe, "unused")(request, image=False)
    with pytest.raises(KinemaError, match="seed"):
        Generator(pipe, "unused")(Request("a cat", None, "default", "9:16", 5, 1, 2.0, 2**70), image=False)


def test_aspect_ratio_alone_keeps_the_default_models_pixel_count(tmp_path):
    run = kinema("sample", "a red circle", "--aspect-ratio", "9:16", "-o", "wide.mp4", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    frames = read_video(tmp_path / "wide.mp4").frames
    _, height, width, _ = frames.shape
    assert width > height  # 9:16 is landscape in Open-Sora's height:width
    assert abs(height * width - 32 * 32) <= 0.25 * 32 * 32, (height, width)
    assert abs(height / width - 9 / 16) < 0.15


def test_aspect_ratio_that_is_not_a_ratio_is_refused(tmp_path, never_generates):
    assert_one_line_error(kinema("sample", "a cat", "--aspect-ratio", "nan", cwd=tmp_path), "--aspect-ratio", "9:16")
    assert_one_line_error(kinema("sample", "a cat", "--aspect-ratio", "1:0", cwd=tmp_path), "--aspect-ratio")


def test_a_binary_prompt_file_is_refused(tmp_path, never_generates):
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(kinema("sample", "--prompt-file", "bin.dat", cwd=tmp_path), "--prompt-file", "bin.dat",
                          "not UTF-8")
    (tmp_path / "nul.txt").write_bytes(b"a cat\x00\x00\x01")
    assert_one_line_error(kinema("sample", "--prompt-file", "nul.txt", cwd=tmp_path), "nul.txt", "binary")


def test_output_that_names_a_folder_is_refused(tmp_path, never_generates):
    (tmp_path / "out.mp4").mkdir()
    assert_one_line_error(kinema("sample", "a cat", "-o", "out.mp4", cwd=tmp_path), "-o", "out.mp4", "folder")


def test_output_where_nothing_can_be_written_is_refused(tmp_path, never_generates):
    # sysfs takes no new files, even from root
    assert_one_line_error(kinema("sample", "a cat", "-o", "/sys/kinema-sample.mp4", cwd=tmp_path),
                          "-o", "cannot write in '/sys'")
    (tmp_path / "file").write_text("")
    assert_one_line_error(kinema("sample", "a cat", "-o", "file/out.mp4", cwd=tmp_path), "-o", "cannot write in")


def test_an_earlier_runs_videos_are_kept_unless_overwrite_is_asked(tmp_path, monkeypatch):
    run = kinema("sample", "a cat", "-o", "out.mp4", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    first = (tmp_path / "out.mp4").read_bytes(), (tmp_path / "out.json").read_text()
    with monkeypatch.context() as patched:
        forbid_generating(patched)
        assert_one_line_error(kinema("sample", "a dog", "-o", "out.mp4", *FAST, cwd=tmp_path),
                              "-o", "out.mp4", "already exists", "--overwrite")
        # a sidecar alone is an earlier run's too (out.gif's record would be replaced by out.mp4's)
        (tmp_path / "other.json").write_text("{}")
        assert_one_line_error(kinema("sample", "a dog", "-o", "other.mp4", *FAST, cwd=tmp_path),
                              "other.json", "already exists")
        # several videos: any of them taken stops the run
        (tmp_path / "many_1.mp4").write_bytes(b"")
        assert_one_line_error(kinema("sample", "-p", "a", "-p", "b", "-o", "many.mp4", *FAST, cwd=tmp_path),
                              "many_1.mp4", "already exists")
    assert ((tmp_path / "out.mp4").read_bytes(), (tmp_path / "out.json").read_text()) == first
    run = kinema("sample", "a dog", "-o", "out.mp4", "--overwrite", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    assert '"a dog"' in (tmp_path / "out.json").read_text()


def test_a_missing_output_folder_is_made(tmp_path):
    run = kinema("sample", "a cat", "-o", "new/deeper/out.mp4", *FAST, cwd=tmp_path)
    assert run.exit_code == 0, run.output
    assert (tmp_path / "new/deeper/out.mp4").is_file() and (tmp_path / "new/deeper/out.json").is_file()


def test_a_huge_reference_image_is_refused_from_its_header(tmp_path, never_generates):
    png_header(tmp_path / "huge.png", 12000, 12000)  # 144 megapixels in under 100 bytes
    assert (tmp_path / "huge.png").stat().st_size < 100
    assert_one_line_error(kinema("sample", "a cat", "--reference", "huge.png", cwd=tmp_path),
                          "huge.png", "12000x12000", "144 megapixels", "limit is 40 megapixels")
    png_header(tmp_path / "bomb.png", 20000, 20000)  # past PIL's own decompression-bomb error
    assert_one_line_error(kinema("sample", "a cat", "--reference", "bomb.png", cwd=tmp_path), "bomb.png", "limit")


def test_reference_videos_are_measured_from_the_stream(tmp_path, never_generates, monkeypatch):
    from kinema.sample import references

    write_video(tmp_path / "ref.mp4", torch.zeros((9, 32, 48, 3), dtype=torch.uint8), fps=8)
    assert references.reference_size(tmp_path / "ref.mp4") == (9, 32, 48)
    monkeypatch.setattr(references, "MAX_REFERENCE_PIXELS", 9 * 32 * 48 - 1)
    assert_one_line_error(kinema("sample", "a cat", "--reference", "ref.mp4", cwd=tmp_path), "ref.mp4",
                          "9 frames of 48x32")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    assert_one_line_error(kinema("sample", "a cat", "--reference", "junk.mp4", cwd=tmp_path), "junk.mp4")


def test_bad_attention_cache_and_from_sidecar_are_refused(tmp_path, never_generates):
    assert_one_line_error(kinema("sample", "a cat", "--attention-cache", "start=nan", cwd=tmp_path), "attention cache")
    (tmp_path / "side.json").write_text('{"format": "kinema-sample/1", "seed": 1}')
    assert_one_line_error(kinema("sample", "--from-sidecar", "side.json", cwd=tmp_path), "side.json", "lacks")
    assert_one_line_error(kinema("sample", "--from-sidecar", "nowhere.json", cwd=tmp_path), "does not exist")


@pytest.mark.parametrize("args, needles", [
    (["--seed", str(2**70)], ["--seed"]),
    (["--cfg", "nan"], ["--cfg"]),
    (["--steps", "0"], ["--steps"]),
    (["--device", "bogus"], ["--device bogus"]),
    (["--csv", "."], ["--csv", "directory"]),
    (["--csv", "/sys/adherence.csv"], ["--csv", "cannot write in"]),
])
def test_adherence_options_are_checked(tmp_path, args, needles, never_generates):
    assert_one_line_error(kinema("eval", "adherence", "-n", "1", *args, cwd=tmp_path), *needles)


def test_adherence_keeps_an_earlier_runs_csv(tmp_path, never_generates):
    (tmp_path / "mine.csv").write_text("an earlier run's results\n")
    assert_one_line_error(kinema("eval", "adherence", "-n", "1", "--csv", "mine.csv", cwd=tmp_path),
                          "--csv 'mine.csv' already exists", "--overwrite")
    assert (tmp_path / "mine.csv").read_text() == "an earlier run's results\n"


def test_resolve_size_keeps_the_pixel_count_only_without_a_table():
    from kinema.sample.cli import load_pipeline

    pipe, _ = load_pipeline(None, "cpu")
    assert pipe.resolve_size(None, None, None, None) == (32, 32)
    assert pipe.resolve_size(None, None, None, "1:1") == (32, 32)
    assert pipe.resolve_size(None, None, None, "9:16") == (24, 44)
    assert pipe.resolve_size(None, None, None, "16:9") == (44, 24)
    height, width = pipe.resolve_size(None, None, "144p", "9:16")  # a named table still means that table
    assert (height, width) == (144, 256)


@pytest.mark.parametrize("kwargs, message", [
    ({"fps": 0}, "fps=0 is out of range"),
    ({"guidance_scale": float("nan")}, "guidance_scale=nan is not a finite number"),
    ({"num_frames": 0}, "num_frames=0 is out of range"),
    ({"num_inference_steps": 2.5}, "num_inference_steps=2.5 is not a whole number"),
])
def test_the_pipeline_refuses_what_would_fall_back_to_defaults(kwargs, message):
    from kinema.sample.cli import load_pipeline

    pipe, _ = load_pipeline(None, "cpu")
    with pytest.raises(KinemaError, match=message):
        pipe("a cat", **kwargs)
