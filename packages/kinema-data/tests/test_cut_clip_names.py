"""`kinema data cut`: sources that share a file name (a/clip.mp4, b/clip.mp4) get distinct, stable clips."""

import shutil

import numpy as np
import pandas as pd
import pytest

from kinema.core.video import read_video
from kinema.data.scenes import clip_stem
from kinema.data.table import read_table


@pytest.fixture
def same_named_sources(tmp_path, kinema_cli):
    """scenes.csv over vids/a/clip.mp4 and vids/b/clip.mp4 (two different synthetic clips)."""
    assert kinema_cli("data", "synth", "-n", 2, "-o", tmp_path / "syn", "--no-progress").exit_code == 0
    for i, name in enumerate("ab"):
        (tmp_path / "vids" / name).mkdir(parents=True)
        shutil.copy(tmp_path / "syn" / f"synth_{i:06d}.mp4", tmp_path / "vids" / name / "clip.mp4")
    assert kinema_cli("data", "convert", tmp_path / "vids", "-o", tmp_path / "raw.csv").exit_code == 0
    result = kinema_cli("data", "scenes", tmp_path / "raw.csv", "-o", tmp_path / "scenes.csv", "--workers", 1,
                        "--no-progress")
    assert result.exit_code == 0, result.output
    return tmp_path / "scenes.csv"


@pytest.mark.parametrize("workers", [1, 2])
def test_same_file_names_in_different_folders_give_distinct_clips(tmp_path, kinema_cli, same_named_sources,
                                                                   workers):
    out = tmp_path / "clips.csv"
    result = kinema_cli("data", "cut", same_named_sources, "-o", out, "--save-dir", tmp_path / "clips",
                        "--workers", workers, "--no-progress")
    assert result.exit_code == 0, result.output
    clips = read_table(out)
    assert len(clips) == 2 and clips["cut_error"].isna().all()
    assert clips["path"].nunique() == 2
    for row in clips.to_dict("records"):
        clip = read_video(row["path"]).frames.numpy().astype(int)
        source = read_video(row["source"]).frames.numpy().astype(int)
        other = [s for s in clips["source"] if s != row["source"]][0]
        assert np.abs(clip - source).mean() < 3  # the clip re-encodes its own source ...
        assert np.abs(clip - read_video(other).frames.numpy().astype(int)).mean() > 3 * np.abs(clip - source).mean()


def test_resumed_cut_names_clips_as_before(tmp_path, kinema_cli, same_named_sources):
    out = tmp_path / "clips.csv"
    args = ("data", "cut", same_named_sources, "-o", out, "--save-dir", tmp_path / "clips", "--workers", 1,
            "--no-progress")
    assert kinema_cli(*args).exit_code == 0
    first = read_table(out)
    out.unlink()
    assert kinema_cli(*args).exit_code == 0
    pd.testing.assert_series_equal(read_table(out)["path"], first["path"])
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == sorted(
        p.split("/")[-1] for p in first["path"])


def test_clip_stem_is_readable_unique_and_stable():
    assert clip_stem("/data/a/clip.mp4") == clip_stem("/data/a/clip.mp4")
    assert clip_stem("/data/a/clip.mp4") != clip_stem("/data/b/clip.mp4")
    assert clip_stem("/x/a/clip.mp4") != clip_stem("/y/a/clip.mp4")  # same readable part, the hash differs
    assert clip_stem("/data/a/clip.mp4").startswith("a_clip-")
    assert "/" not in clip_stem("/data/we ird/na:me?.mp4") and len(clip_stem("/d/" + "x" * 400 + ".mp4")) < 120
