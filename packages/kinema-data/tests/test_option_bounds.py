"""Every numeric option of `kinema data` is bounded: bad values fail in one line, before any work."""

import pandas as pd
import pytest

from kinema.core import KinemaError
from kinema.data.synthetic import write_dataset
from kinema.data.table import write_table

BIG = "99999999999999999999999"


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "t.csv"
    write_table(pd.DataFrame({"path": ["/a.mp4"], "text": ["a"], "scenes": ["[[0, 4]]"]}), path)
    return path


def _cases(table, tmp_path):
    out = tmp_path / "out"
    stage = lambda *a: ["data", *a, table, "-o", tmp_path / "o.csv"]  # noqa: E731
    cases = []
    for value in ("0", "-1", BIG, "x"):
        cases += [
            (["data", "synth", "-o", out, "-n", value], "--num-videos"),
            (["data", "synth", "-o", out, "-n", 1, "--size", value], "--size"),
            (["data", "synth", "-o", out, "-n", 1, "--frames", value], "--frames"),
            (stage("info") + ["--workers", value], "--workers"),
            (stage("info") + ["--save-every", value], "--save-every"),
            (["data", "split", table, "-n", value], "--num-parts"),
            (stage("scenes") + ["--min-scene-len", value], "--min-scene-len"),
            (stage("cut") + ["--save-dir", out, "--max-seconds", value], "--max-seconds"),
            (["data", "shards", table, "-o", out, "--max-count", value], "--max-count"),
        ]
    for value in ("-1", BIG, "1.5"):
        cases += [
            (["data", "synth", "-o", out, "-n", 1, "--seed", value], "--seed"),
            (stage("filter", "--fmin", value), "--fmin"),
            (stage("filter", "--hwmax", value), "--hwmax"),
            (stage("cut") + ["--save-dir", out, "--short-side", value], "--short-side"),
        ]
    for value in ("-1", "nan", "inf"):
        cases += [
            (stage("filter", "--flowmin", value), "--flowmin"),
            (stage("filter", "--ocrmax", value), "--ocrmax"),
            (stage("filter", "--blurmin", value), "--blurmin"),
            (stage("scenes") + ["--threshold", value], "--threshold"),
            (stage("cut") + ["--save-dir", out, "--min-seconds", value], "--min-seconds"),
        ]
    for option in ("--num-frames", "--batch-size", "--max-count", "--text-max-length"):
        cases.append((["data", "precompute", table, "-o", out, "--vae", tmp_path, option, "0"], option))
    cases.append((["data", "precompute", table, "-o", out, "--vae", tmp_path, "--image-size", "0", "8"],
                  "--image-size"))
    for option in ("--aesmin", "--matchmin", "--flowmax"):
        cases.append((stage("filter", option, "nan"), option))
    cases.append((stage("filter", "--ocrmax", "1.5"), "--ocrmax"))
    return cases


def test_out_of_range_values_are_refused_in_one_line(tmp_path, kinema_cli, table):
    for args, option in _cases(table, tmp_path):
        result = kinema_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        error = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and option in error[0], (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("kwargs,field", [({"n": 0}, "num_videos"), ({"n": 2, "size": 0}, "size"),
                                          ({"n": 2, "num_frames": 1}, "frames"), ({"n": 1.5}, "num_videos")])
def test_write_dataset_checks_its_arguments_too(tmp_path, kwargs, field):
    n = kwargs.pop("n")
    with pytest.raises(KinemaError, match=field):
        write_dataset(n, tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_smallest_allowed_values_work(tmp_path, kinema_cli):
    result = kinema_cli("data", "synth", "-n", 1, "--size", 16, "--frames", 2, "-o", tmp_path / "s",
                        "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "s" / "meta.csv")) == 1
