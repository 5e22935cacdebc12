"""Property: whatever values `kinema data` options get, the command ends with status 0, 1 or 2 and a
one-line message, never an unhandled exception."""

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinema.core.cli import build_cli
from kinema.data.synthetic import write_dataset
from kinema.data.table import write_table

BIG = str(2**70)
UNHANDLED = re.compile(r"Traceback|Error: [A-Z]\w*(Error|Exception)\b|unexpected failure")

ints = st.one_of(st.integers(-3, 40).map(str), st.integers().map(str), st.sampled_from([BIG, "1.5", "x", ""]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["nan", "-inf", "x"]))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    meta = write_dataset(1, folder / "synth", size=16, num_frames=6)
    table = folder / "table.csv"
    write_table(pd.DataFrame({"path": [str(folder / "synth" / "synth_000000.mp4"), "/nope.mp4"], "text": ["a", ""],
                              "num_frames": [6, 3], "resolution": [256, 64], "flow": [0.5, 2.0]}), table)
    return {"meta": meta, "table": table, "folder": folder}


def _invoke(args) -> None:
    result = CliRunner().invoke(build_cli(), [str(a) for a in args], catch_exceptions=True)
    shown = f"{args}: exit {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert result.exit_code in (0, 1, 2), shown
    assert not UNHANDLED.search(result.output), shown
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == (result.exit_code != 0), shown


FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(n=st.one_of(st.integers(-2, 2).map(str), st.sampled_from([BIG, "x"])),
       size=st.sampled_from(["-1", "0", "15", "16", "17", BIG, "nan"]),
       frames=st.sampled_from(["-1", "0", "1", "2", "3", BIG, "2.5"]), seed=ints)
def test_synth(inputs, n, size, frames, seed):
    out = tempfile.mkdtemp(dir=inputs["folder"])
    _invoke(["data", "synth", "-n", n, "--size", size, "--frames", frames, "--seed", seed, "-o", out,
             "--no-progress"])


@FAST
@given(fmin=st.none() | ints, hwmax=st.none() | ints, flowmin=st.none() | floats, flowmax=st.none() | floats,
       ocrmax=st.none() | floats, aesmin=st.none() | floats)
def test_filter(inputs, fmin, hwmax, flowmin, flowmax, ocrmax, aesmin):
    args = ["data", "filter", inputs["table"], "-o", Path(tempfile.mkdtemp(dir=inputs["folder"])) / "out.csv"]
    for option, value in (("--fmin", fmin), ("--hwmax", hwmax), ("--flowmin", flowmin), ("--flowmax", flowmax),
                          ("--ocrmax", ocrmax), ("--aesmin", aesmin)):
        if value is not None:
            args += [option, value]
    _invoke(args)


@FAST
@given(parts=st.one_of(st.integers(-3, 12).map(str), st.sampled_from([BIG, "0x10", "2.0"])))
def test_split(inputs, parts):
    _invoke(["data", "split", inputs["table"], "-n", parts, "-o", tempfile.mkdtemp(dir=inputs["folder"])])


@FAST
@given(detector=st.sampled_from(["adaptive", "content", "threshold", "hash", "histogram", "nope"]),
       threshold=st.none() | floats, min_scene_len=ints, save_every=st.sampled_from(["1", "0", "-4", BIG]))
def test_scenes(inputs, detector, threshold, min_scene_len, save_every):
    args = ["data", "scenes", inputs["meta"], "-o", Path(tempfile.mkdtemp(dir=inputs["folder"])) / "s.csv",
            "--detector", detector, "--min-scene-len", min_scene_len, "--save-every", save_every,
            "--workers", "1", "--no-progress"]
    _invoke(args + ([] if threshold is None else ["--threshold", threshold]))
