from __future__ import annotations

import csv
import subprocess
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import CLIPS_WITH_CUTS

from kinema.core.video import read_video
from kinema.data.runner import run_stage
from kinema.data.scenes import SceneCutStage, SceneDetectStage, detect_scenes
from kinema.data.table import read_table


def _lossless_copy(frames: np.ndarray, fps: float, path) -> None:
    """FFV1 in BGR: OpenCV (the scenedetect CLI's decoder) reads back exactly these pixels."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _cli_scenes(video_path, out_dir) -> list[tuple[int, int]]:
    """Scenes from the scenedetect CLI with upstream's settings, as [start, end) frame ranges."""
    command = [sys.executable, "-m", "scenedetect", "-i", str(video_path), "-o", str(out_dir), "-q",
               "-m", "15", "detect-adaptive", "-t", "3.0", "list-scenes", "-s", "-f", "scenes.csv"]
    subprocess.run(command, check=True, capture_output=True)
    with open(out_dir / "scenes.csv") as f:
        rows = list(csv.DictReader(f))
    return [(int(r["Start Frame"]) - 1, int(r["End Frame"])) for r in rows]  # CLI: 1-based, end inclusive


@pytest.mark.parametrize("name", sorted(CLIPS_WITH_CUTS))
def test_scene_split_finds_the_cuts_the_scenedetect_cli_finds(media_dir, tmp_path, name):
    source = media_dir / name
    video = read_video(source)
    frames = video.frames.numpy()
    copy = tmp_path / "copy.mkv"
    _lossless_copy(frames, video.fps, copy)
    capture = cv2.VideoCapture(str(copy))
    decoded = [capture.read()[1][..., ::-1] for _ in range(len(frames))]
    assert np.array_equal(np.stack(decoded), frames), "the CLI must see the same pixels"

    expected = _cli_scenes(copy, tmp_path)
    ours, fps = detect_scenes(source)
    assert ours == expected
    assert [start for start, _ in ours[1:]] == CLIPS_WITH_CUTS[name]
    assert ours[-1][1] == len(frames) and fps == pytest.approx(video.fps)
    assert detect_scenes(copy)[0] == expected  # files OpenCV reads go through PySceneDetect's backend


def _closest(frame: np.ndarray, candidates: dict[int, np.ndarray]) -> int:
    return min(candidates, key=lambda i: np.abs(candidates[i].astype(float) - frame).mean())


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_cut_clips_start_and_end_on_the_right_frames(media_dir, tmp_path, backend):
    name = "video_wan_ati-1.webp"
    source = media_dir / name
    table = pd.DataFrame({"path": [str(source)]})
    run_stage(SceneDetectStage(), table, tmp_path / "scenes.csv", workers=1, progress=False)
    scenes_table = read_table(tmp_path / "scenes.csv")
    if backend == "ffmpeg":  # ffmpeg cannot read animated WebP: cut from a lossless mkv copy of it
        video = read_video(source)
        _lossless_copy(video.frames.numpy(), video.fps, tmp_path / "src.mkv")
        scenes_table["path"] = str(tmp_path / "src.mkv")
    stage = SceneCutStage(tmp_path / "clips", short_side=None, backend=backend)
    report = run_stage(stage, scenes_table, tmp_path / "clips.csv", workers=1, progress=False)
    assert report.errors == 0
    clips = read_table(tmp_path / "clips.csv")
    src = read_video(source).frames.numpy()
    assert clips[["frame_start", "frame_end"]].values.tolist() == [[0, 15], [15, 90]]
    for row in clips.to_dict("records"):
        clip = read_video(row["path"]).frames.numpy()
        start, end = row["frame_start"], row["frame_end"]
        assert len(clip) == end - start == row["num_frames"]
        near_start = {i: src[i] for i in range(max(0, start - 2), min(len(src), start + 3))}
        near_end = {i: src[i] for i in range(max(0, end - 3), min(len(src), end + 2))}
        assert _closest(clip[0], near_start) == start
        assert _closest(clip[-1], near_end) == end - 1
        assert np.abs(clip.astype(float) - src[start:end]).mean() < 4  # only h264's loss


def test_scene_detect_command_writes_timestamps(media_dir, tmp_path, kinema_cli):
    pd.DataFrame({"path": [str(media_dir / "video_wan_ati-1.webp")]}).to_csv(tmp_path / "in.csv", index=False)
    result = kinema_cli("data", "scenes", tmp_path / "in.csv", "-o", tmp_path / "out.csv", "--workers", 1)
    assert result.exit_code == 0, result.output
    row = read_table(tmp_path / "out.csv").iloc[0]
    assert row["timestamp"] == "[('00:00:00.000', '00:00:00.495'), ('00:00:00.495', '00:00:02.970')]"
