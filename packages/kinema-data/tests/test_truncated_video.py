"""`kinema data info` finds a fast-start mp4 cut short (its header still promises every frame), and later
stages carry that row over unprocessed."""

from fractions import Fraction

import av
import numpy as np
import pandas as pd
import pytest

from kinema.core.video import VideoReadError, probe_video
from kinema.data.integrity import check_complete
from kinema.data.table import read_table, write_table

FRAMES = 105


def _fast_start_mp4(path, frames=FRAMES, fps=24):
    """An mp4 with its index (moov) before the data (mdat), as streaming sites serve them."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def whole_and_cut(tmp_path):
    whole = _fast_start_mp4(tmp_path / "whole.mp4")
    data = whole.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # fast start: the header survives the cut
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return whole, cut


def test_cut_file_still_claims_every_frame_but_fails_the_check(whole_and_cut):
    whole, cut = whole_and_cut
    assert probe_video(cut).num_frames == FRAMES  # what the header says: why a check is needed
    check_complete(str(whole))
    with pytest.raises(VideoReadError, match="truncated"):
        check_complete(str(cut))


def test_info_marks_the_cut_file_and_later_stages_skip_it(tmp_path, kinema_cli, whole_and_cut):
    whole, cut = whole_and_cut
    write_table(pd.DataFrame({"path": [str(whole), str(cut)]}), tmp_path / "raw.csv")
    result = kinema_cli("data", "info", tmp_path / "raw.csv", "-o", tmp_path / "info.csv", "--workers", 1,
                        "--no-progress")
    assert result.exit_code == 3, result.output
    info = read_table(tmp_path / "info.csv").set_index("path")
    assert info.loc[str(whole), "num_frames"] == FRAMES and pd.isna(info.loc[str(whole), "info_error"])
    assert "truncated" in info.loc[str(cut), "info_error"] and str(cut) in info.loc[str(cut), "info_error"]

    result = kinema_cli("data", "scenes", tmp_path / "info.csv", "-o", tmp_path / "scenes.csv", "--workers", 1,
                        "--no-progress")
    assert result.exit_code == 0, result.output
    assert "1 failed in an earlier stage" in result.output
    scenes = read_table(tmp_path / "scenes.csv").set_index("path")
    assert scenes.loc[str(whole), "scenes"] == f"[[0, {FRAMES}]]"
    assert pd.isna(scenes.loc[str(cut), "scenes"]) and pd.isna(scenes.loc[str(cut), "scenes_error"])
    assert "truncated" in scenes.loc[str(cut), "info_error"]

    result = kinema_cli("data", "filter", tmp_path / "scenes.csv", "-o", tmp_path / "clean.csv", "--drop-errors")
    assert read_table(tmp_path / "clean.csv")["path"].tolist() == [str(whole)]


@pytest.mark.parametrize("fmt,codec,suffix", [("matroska", "libx264", ".mkv"), ("mov", "mpeg4", ".mov"),
                                              ("avi", "mpeg4", ".avi")])
def test_other_containers_pass_whole_and_fail_cut(tmp_path, fmt, codec, suffix):
    path = tmp_path / f"v{suffix}"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(30):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    check_complete(str(path))
    data = path.read_bytes()
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoReadError, match="truncated"):
        check_complete(str(cut))
