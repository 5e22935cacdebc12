from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import texture
from stages_for_tests import CountingStage

from kinema.core.video import write_video
from kinema.data.runner import run_stage
from kinema.data.table import read_table, shard_table, write_table


def _table(paths) -> pd.DataFrame:
    return pd.DataFrame({"path": [str(p) for p in paths]})


def test_pool_processes_all_rows_in_input_order_and_records_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("KINEMA_TEST_LOG", str(tmp_path / "log.txt"))
    paths = [f"/data/clip{i}.mp4" for i in range(6)] + ["/data/bad.mp4"]
    report = run_stage(CountingStage(), _table(paths), tmp_path / "out.csv", workers=2, progress=False)
    out = read_table(tmp_path / "out.csv")
    assert out["path"].tolist() == paths
    assert out["count_len"].iloc[:6].tolist() == [len(p) for p in paths[:6]]
    assert out["count_error"].iloc[-1] == "ValueError: cannot process /data/bad.mp4"
    assert out["count_error"].iloc[:6].isna().all()
    assert (report.processed, report.errors, report.partial) == (7, 1, True)


def test_rerun_skips_done_rows_and_retries_errors_only_when_asked(tmp_path, monkeypatch):
    log = tmp_path / "log.txt"
    monkeypatch.setenv("KINEMA_TEST_LOG", str(log))
    table = _table(["/a", "/b", "/bad"])
    run_stage(CountingStage(), table.iloc[:2], tmp_path / "out.csv", workers=1, progress=False)
    log.write_text("")
    report = run_stage(CountingStage(), table, tmp_path / "out.csv", workers=1, progress=False)
    assert log.read_text().split() == ["/bad"]
    assert (report.skipped, report.processed) == (2, 1)
    log.write_text("")
    run_stage(CountingStage(), table, tmp_path / "out.csv", workers=1, progress=False)
    assert log.read_text() == ""
    run_stage(CountingStage(), table, tmp_path / "out.csv", workers=1, progress=False, retry_errors=True)
    assert log.read_text().split() == ["/bad"]
    assert read_table(tmp_path / "out.csv")["path"].tolist() == ["/a", "/b", "/bad"]


def test_sharded_runs_merged_equal_the_unsharded_run(tmp_path, monkeypatch, kinema_cli):
    monkeypatch.setenv("KINEMA_TEST_LOG", str(tmp_path / "log.txt"))
    table = _table([f"/v/{i:02d}.mp4" for i in range(11)] + ["/v/bad.mp4"])
    run_stage(CountingStage(), table, tmp_path / "full.csv", workers=1, progress=False)
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"part{i}.csv")
        run_stage(CountingStage(), shard_table(table, i, 3), parts[-1], workers=1, progress=False)
    result = kinema_cli("data", "merge", *parts, "-o", tmp_path / "merged.csv")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(read_table(tmp_path / "merged.csv"), read_table(tmp_path / "full.csv"))


def test_folder_with_good_truncated_and_non_video_files_is_a_partial_success(tmp_path, kinema_cli):
    folder = tmp_path / "videos"
    rng = np.random.default_rng(0)
    for i in range(3):
        frames = np.stack([np.roll(texture(48, 64, i), 2 * t, axis=1) for t in range(12)])
        write_video(folder / f"good{i}.mp4", frames, 8.0)
    whole = write_video(tmp_path / "whole.mp4", rng.integers(0, 255, (24, 48, 64, 3), dtype=np.uint8), 8.0)
    (folder / "truncated.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (folder / "notes.mp4").write_text("this is not a video\n")
    assert kinema_cli("data", "convert", folder, "-o", tmp_path / "raw.csv").exit_code == 0
    result = kinema_cli("data", "score", "blur", tmp_path / "raw.csv", "-o", tmp_path / "blur.csv", "--workers", 2,
                     "--no-progress")
    assert result.exit_code == 3, result.output
    assert "partial success: 2 row(s) failed" in result.output
    out = read_table(tmp_path / "blur.csv").set_index(pd.Index([Path(p).name for p in
                                                                 read_table(tmp_path / "blur.csv")["path"]]))
    for name in ("good0.mp4", "good1.mp4", "good2.mp4"):
        assert out.loc[name, "blur"] > 0 and pd.isna(out.loc[name, "blur_error"])
    for name in ("truncated.mp4", "notes.mp4"):
        assert pd.isna(out.loc[name, "blur"])
        assert "cannot read video" in out.loc[name, "blur_error"] and name in out.loc[name, "blur_error"]


RUN_SCRIPT = """
import sys
from kinema.core import get_registry
from kinema.core.cli import main
from stages_for_tests import CountingStage
get_registry("scorer").add("counting", CountingStage)
main(sys.argv[1:])
"""


def _run_cli(args, log, tests_dir, **popen):
    env = {**os.environ, "KINEMA_TEST_LOG": str(log), "PYTHONPATH": str(tests_dir)}
    return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, *map(str, args)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def test_run_killed_midway_resumes_without_redoing_done_rows(tmp_path):
    paths = [f"/clips/{i:03d}.mp4" for i in range(24)]
    write_table(_table(paths), tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    args = ["data", "score", "counting", tmp_path / "in.csv", "-o", out, "--workers", 2, "--save-every", 1,
            "-O", "delay=0.15", "--no-progress"]
    tests_dir = Path(__file__).parent
    first = _run_cli(args, tmp_path / "log1.txt", tests_dir)
    deadline = time.time() + 60
    while time.time() < deadline:
        if out.exists() and len(read_table(out)) >= 6:
            break
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    saved = read_table(out)
    assert 6 <= len(saved) < len(paths), "the run should have been killed midway"

    second = _run_cli(args, tmp_path / "log2.txt", tests_dir)
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output
    redone = set((tmp_path / "log2.txt").read_text().split())
    assert redone == set(paths) - set(saved["path"])
    final = read_table(out)
    assert final["path"].tolist() == paths
    pd.testing.assert_frame_equal(final.iloc[: 0], saved.iloc[: 0], check_dtype=False)
    assert final.set_index("path").loc[saved["path"], "count_len"].tolist() == saved["count_len"].tolist()


def test_unknown_scorer_lists_the_available_names(kinema_cli, tmp_path):
    write_table(_table(["/x.mp4"]), tmp_path / "in.csv")
    result = kinema_cli("data", "score", "nope", tmp_path / "in.csv")
    assert result.exit_code != 0
    for name in ("flow", "ocr", "blur", "cmotion", "aesthetic", "match"):
        assert name in result.output


@pytest.mark.parametrize("spec", ["1", "2/2", "a/b", "-1/3"])
def test_bad_shard_spec_is_explained(kinema_cli, tmp_path, spec):
    write_table(_table(["/x.mp4"]), tmp_path / "in.csv")
    result = kinema_cli("data", "score", "blur", tmp_path / "in.csv", "--shard", spec)
    assert result.exit_code != 0 and "--shard" in result.output
