"""`kinema sample --compile`: the transformer's blocks compiled, the video equal to eager's.

Tolerance: the written PNG frames within 1 of 255 (fp32 on the CPU: inductor's reordered reductions
move the decoded values in the last bits, which can flip a rounding to uint8).
"""

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from kinema.core.video import read_video
from kinema.dit.compile import check_compile_available, is_compiled
from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.testing import make_tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("compile") / "tiny"
    make_tiny_pipeline(path)
    return path


def sample(model, tmp_path, name, *flags):
    from click.testing import CliRunner

    from kinema.core.cli import build_cli

    out = tmp_path / name
    args = ["sample", "a red car", "-o", str(out), "--model", str(model), "--steps", "2", "--num-frames", "1",
            "--seed", "1", "--device", "cpu", *flags]
    result = CliRunner().invoke(build_cli(), args, env={"KINEMA_PIPELINE": None})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return read_video(out).frames.numpy().astype(np.int16)


def test_sample_compile_matches_eager(model, tmp_path, monkeypatch):
    check_compile_available(torch.device("cpu"))
    compiled_pipes = []
    original = KinemaVideoPipeline.compile_transformer

    def record(pipe, **kwargs):
        original(pipe, **kwargs)
        compiled_pipes.append(pipe)

    monkeypatch.setattr(KinemaVideoPipeline, "compile_transformer", record)
    eager = sample(model, tmp_path, "eager.png")
    assert not compiled_pipes
    torch._dynamo.reset()
    counters.clear()
    compiled = sample(model, tmp_path, "compiled.png", "--compile")
    assert len(compiled_pipes) == 1 and is_compiled(compiled_pipes[0].transformer)
    assert counters["stats"]["unique_graphs"] >= 1  # the blocks ran through dynamo
    assert compiled.shape == eager.shape == (1, 32, 32, 3)
    assert np.abs(compiled - eager).max() <= 1
