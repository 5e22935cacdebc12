"""The README's tiny run, parsed from its fenced block and run as written: train the tiny config, export the
checkpoint as a pipeline folder, sample a clip from it."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

from click.testing import CliRunner

from kinema.core.cli import build_cli

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parents[1]


def tiny_run_commands() -> list[list[str]]:
    text = (PACKAGE / "README.md").read_text()
    section = text.split("## A tiny run", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_readme_tiny_run_trains_exports_and_samples_as_written(tmp_path, monkeypatch):
    commands = tiny_run_commands()
    assert [argv[:2] for argv in commands] == [["kinema", "train"], ["kinema", "train-export"], ["kinema", "sample"]]
    # run where the README runs it (the repository root: configs/ and the VAE in packages/), writing to tmp_path
    for name in ("configs", "packages"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    cli = build_cli()
    for argv in commands:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = CliRunner().invoke(cli, argv[1:])
        assert result.exit_code == 0, f"{shlex.join(argv)}\n{result.output}"
        assert not [w for w in caught if "truncated" in str(w.message)]  # captions fit the tiny T5

    from kinema.core.video import read_video

    out = Path(commands[-1][commands[-1].index("-o") + 1])
    assert tuple(read_video(out).frames.shape) == (17, 32, 32, 3)


def test_the_tiny_config_reads_every_synthetic_caption_whole():
    """Its tiny T5 reads as many tokens as the longest caption the synthetic set writes (one per byte + EOS)."""
    import random

    from transformers import ByT5Tokenizer

    from kinema.core.shapes import caption, random_spec
    from kinema.train.config import load_config

    cfg = load_config(ROOT / "configs" / "train" / "tiny-stdit2-synthetic.yaml")
    rng = random.Random(0)
    captions = {caption(random_spec(rng, 17, 32, 32), rng) for _ in range(20000)}
    longest = max(len(ids) for ids in ByT5Tokenizer()(sorted(captions))["input_ids"])
    assert longest <= cfg.text_encoder.kwargs["max_length"] == cfg.model.kwargs["model_max_length"]
    assert longest > 72  # the sample reaches the long templates
