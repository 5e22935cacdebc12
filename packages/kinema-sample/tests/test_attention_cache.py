"""Attention step caching: off is exact, on skips exactly the configured steps, per call, and stays close."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from kinema.core import KinemaError

from kinema.sample.attention_cache import AttentionCacheConfig, attention_modules
from kinema.sample.testing import make_tiny_pipeline

REPO = Path(__file__).resolve().parents[3]
STEPS = 10


@pytest.fixture(scope="module")
def pipe():
    pipe = make_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents(pipe, **call):
    call = {"num_inference_steps": STEPS, **call}
    return pipe("a red car", output_type="latent", generator=torch.Generator().manual_seed(0), **call).frames


def counting(pipe):
    """Record (kind, step) for every attention forward that really runs, behind the cache's own wrapper."""
    cache = pipe.attention_cache
    ran = []
    for kind, module in cache.modules:
        def real(*args, kind=kind, forward=type(module).forward.__get__(module), **kwargs):
            ran.append((kind, cache.step))
            return forward(*args, **kwargs)

        module.forward = cache._wrap(kind, module, real)
    return ran


def test_off_and_never_reusing_are_bit_exact(pipe):
    plain = latents(pipe)
    pipe.enable_attention_cache(spatial=1, temporal=1, cross=1, start=0.0, end=1.0)
    try:
        assert torch.equal(latents(pipe), plain)  # the wrapper alone changes nothing
    finally:
        pipe.disable_attention_cache()
    assert torch.equal(latents(pipe), plain)
    for _, module in attention_modules(pipe.transformer):
        assert "forward" not in vars(module)


def test_skips_exactly_in_the_configured_range(pipe):
    cache = pipe.enable_attention_cache(spatial=2, temporal=3, cross=5, start=0.2, end=0.8)  # steps 2..7
    try:
        ran = counting(pipe)
        latents(pipe)
    finally:
        pipe.disable_attention_cache()
    skipped = {"spatial": {3, 5, 7}, "temporal": {3, 4, 6, 7}, "cross": {3, 4, 5, 6}}
    depth = len(pipe.transformer.blocks)
    for kind, skip in skipped.items():
        steps = sorted(step for k, step in ran if k == kind)
        # one call per block and step: the guided batch [uncond; cond] is one call, reused together
        assert steps == sorted(s for s in range(STEPS) if s not in skip for _ in range(depth)), kind
        assert cache.stats.calls[kind] == [depth * (STEPS - len(skip)), depth * len(skip)]
    assert 0 < cache.stats.skipped_fraction("flops") < 1


def test_cached_output_is_finite_close_and_repeatable(pipe):
    plain = latents(pipe)
    pipe.enable_attention_cache()
    try:
        first, second = latents(pipe), latents(pipe)
    finally:
        pipe.disable_attention_cache()
    assert torch.isfinite(first).all()
    assert not torch.equal(first, plain)  # something was reused
    assert (first - plain).norm() / plain.norm() < 0.05
    assert torch.equal(first, second)  # a new call starts from nothing stored


def test_unguided_and_a_changed_batch_recompute(pipe):
    cache = pipe.enable_attention_cache(spatial=2, temporal=2, cross=2, start=0.0, end=1.0)
    try:
        out = latents(pipe, guidance_scale=1.0)
        assert torch.isfinite(out).all() and cache.stats.calls["cross"][1] > 0
        # stored [2, ...] outputs from a guided call never answer an unguided one of another shape
        cache.at_step(0, 4)
        pipe.transformer.blocks[0].cross_attn.forward(torch.randn(2, 8, 48), torch.randn(2, 3, 48))
        cache.at_step(1, 4)
        before = cache.stats.calls["cross"][1]
        pipe.transformer.blocks[0].cross_attn.forward(torch.randn(1, 8, 48), torch.randn(1, 3, 48))
        assert cache.stats.calls["cross"][1] == before
    finally:
        pipe.disable_attention_cache()


def test_config_parsing_and_errors():
    assert AttentionCacheConfig.parse(None) == AttentionCacheConfig.parse("default") == AttentionCacheConfig()
    cfg = AttentionCacheConfig.parse("spatial=2, cross=7,end=0.9")  # unnamed keys keep the default's
    assert (cfg.spatial, cfg.temporal, cfg.cross, cfg.start, cfg.end) == (2, 3, 7, 0.05, 0.9)
    for bad in ("spatial", "speed=2", "spatial=x", "spatial=0", "start=0.9,end=0.1"):
        with pytest.raises(KinemaError, match="attention cache"):
            AttentionCacheConfig.parse(bad)
    assert [AttentionCacheConfig(spatial=2, start=0.2, end=0.8).reuses("spatial", s, 10) for s in range(10)] == \
        [False, False, False, True, False, True, False, True, False, False]


def test_latte_modules_and_unsupported_models():
    from kinema.dit.latte import LatteT2V

    model = LatteT2V(sample_size=8, num_layers=2, num_attention_heads=2, attention_head_dim=8, caption_channels=16,
                     caption_num_tokens=4, video_length=2)
    kinds = [kind for kind, _ in attention_modules(model)]
    assert sorted(kinds) == sorted(["spatial", "cross", "temporal"] * 2)
    with pytest.raises(KinemaError, match="not supported"):
        attention_modules(torch.nn.Linear(2, 2))


def test_adherence_command_takes_the_cache(tmp_path):
    from kinema.sample.adherence import eval_group

    model = tmp_path / "tiny"
    make_tiny_pipeline(model, scheduler="rflow")
    result = CliRunner().invoke(eval_group, ["adherence", "-n", "2", "--batch-size", "2", "--steps", "4",
                                             "--model", str(model), "--csv", str(tmp_path / "a.csv"),
                                             "--attention-cache"])
    assert result.exit_code == 0, result.output
    assert "attention cache: spatial" in result.output and "skipped" in result.output


@pytest.mark.parametrize("script", ["sample_cache.py", "gpu_sample.py"])
def test_benchmark_smoke(script):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, f"benchmarks/{script}", "--smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["off"] or " off " in line for line in lines), result.stdout
    assert "%" in result.stdout
