"""`synth`, `shards` and `precompute` show a progress bar on stderr; `--no-progress` silences it."""

import re

import pytest
from kinema.core import get_registry
from test_precompute_command import LengthEncoder, PoolingVAE

from kinema.data.synthetic import write_dataset

BAR = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "n/total [elapsed..." part


def _bar_counts(stderr: str, desc: str) -> list[tuple[int, int]]:
    lines = [part for part in re.split(r"[\r\n]", stderr) if part.startswith(desc)]
    return [tuple(map(int, m.groups())) for m in map(BAR.search, lines) if m]


@pytest.fixture
def meta(tmp_path):
    return write_dataset(3, tmp_path / "synth", seed=1, size=16, num_frames=3, ext="gif")


def _commands(tmp_path, meta):
    if "pooling-test-vae" not in get_registry("vae"):
        get_registry("vae").add("pooling-test-vae", PoolingVAE)
        get_registry("text_encoder").add("length-test-encoder", LengthEncoder)
    (tmp_path / "vae").mkdir(exist_ok=True)
    return {
        "synth": ["data", "synth", "-n", 3, "--size", 16, "--frames", 2, "-o", tmp_path / "s2"],
        "shards": ["data", "shards", meta, "-o", tmp_path / "shards", "--max-count", 2],
        "precompute": ["data", "precompute", meta, "-o", tmp_path / "features", "--vae", tmp_path / "vae",
                       "--vae-type", "pooling-test-vae", "--text-encoder", "length-test-encoder",
                       "--num-frames", 3, "--image-size", 16, 16, "--batch-size", 2],
    }


@pytest.mark.parametrize("command", ["synth", "shards", "precompute"])
def test_progress_bar_counts_to_the_end_on_stderr(tmp_path, kinema_cli, meta, command):
    result = kinema_cli(*_commands(tmp_path, meta)[command])
    assert result.exit_code == 0, result.output
    counts = _bar_counts(result.stderr, command)
    assert counts and counts[-1] == (3, 3), result.stderr
    assert not _bar_counts(result.stdout, command)  # stdout stays for results


@pytest.mark.parametrize("command", ["synth", "shards", "precompute"])
def test_no_progress_is_quiet(tmp_path, kinema_cli, meta, command):
    result = kinema_cli(*_commands(tmp_path, meta)[command], "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
