"""A real third-party plugin distribution, built and installed through pip, selected by name.

The plugin is built into a wheel (its own pyproject.toml with an `kinema` entry point) and
installed into a private target folder; subprocesses put that folder on their path, so the
normal entry-point discovery finds it exactly as it would after `pip install`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.3.0"

[project.entry-points.kinema]
{module} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

COUNTING_BACKEND = """
import torch.nn.functional as F
from kinema.core import AttentionBackend, hookimpl

CALLS = []

def counting_attention(q, k, v, attn_mask=None, scale=None):
    CALLS.append(tuple(q.shape))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)

@hookimpl
def register_attention_backends(register):
    register("counting", AttentionBackend("counting", counting_attention, description="sdpa that counts its calls"))
"""

BROKEN = """
raise ImportError("this plugin needs a library that is not installed")
"""

USE_BACKEND = """
import torch
import kinema_counting_attention
from kinema.dit.stdit import STDiT

torch.manual_seed(0)
config = dict(input_size=(2, 4, 4), hidden_size=32, depth=2, num_heads=2, caption_channels=8, model_max_length=4)
model = STDiT(**config, attention="counting").eval()
reference = STDiT(**config, attention="sdpa").eval()
reference.load_state_dict(model.state_dict())
x, t = torch.randn(2, 4, 2, 4, 4), torch.tensor([10, 500])
y, mask = torch.randn(2, 1, 4, 8), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
with torch.no_grad():
    out = model(x, t, y, mask=mask)
    ref = reference(x, t, y, mask=mask)
print(len(kinema_counting_attention.CALLS), float((out - ref).abs().max()))
"""


def build_plugin(tmp: Path, dist: str, module: str, source: str) -> Path:
    src = tmp / "src" / dist
    src.mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, module=module))
    (src / f"{module}.py").write_text(textwrap.dedent(source))
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=300)
    return next(wheels.glob(f"{dist.replace('-', '_')}-*.whl"))


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("plugins")
    site = tmp / "site"
    wheels = [
        build_plugin(tmp, "kinema-counting-attention", "kinema_counting_attention", COUNTING_BACKEND),
        build_plugin(tmp, "kinema-broken-plugin", "kinema_broken_plugin", BROKEN),
    ]
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, *map(str, wheels)], check=True, capture_output=True, timeout=300)
    return site


def run(plugin_site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


def test_plugin_backend_is_selected_by_name_in_a_model_config(plugin_site):
    result = run(plugin_site, "-c", USE_BACKEND)
    assert result.returncode == 0, result.stderr
    calls, max_diff = result.stdout.split()
    assert int(calls) > 0  # spatial, temporal and cross attention all went through the plugin
    assert float(max_diff) == 0.0


def test_plugin_shows_in_kinema_plugins_and_the_broken_one_is_reported(plugin_site):
    result = run(plugin_site, "-c", "from kinema.core.cli import main; main()", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugins = {row["distribution"]: row for row in report["plugins"]}
    assert plugins["kinema-counting-attention"]["version"] == "0.3.0"
    assert plugins["kinema-counting-attention"]["hooks"] == ["register_attention_backends"]
    assert "kinema-dit" in plugins  # the others still load
    broken = [f for f in report["failures"] if f["distribution"] == "kinema-broken-plugin"]
    assert broken and "not installed" in broken[0]["error"]
    assert "kinema-broken-plugin" in result.stderr  # and the user is warned


def test_unknown_backend_name_lists_the_available_ones(plugin_site):
    code = "from kinema.dit.stdit import STDiT\nSTDiT(hidden_size=32, depth=1, num_heads=2, attention='fastest')"
    result = run(plugin_site, "-c", code)
    assert result.returncode != 0
    assert "unknown attention backend 'fastest'" in result.stderr
    assert "counting" in result.stderr and "sdpa" in result.stderr and "math" in result.stderr
