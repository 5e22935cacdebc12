"""Whatever `key=value` overrides a user types, `kinema train CONFIG --check` answers with a result or one-line
errors (exit 0, 1 or 2), never an unhandled exception."""

from __future__ import annotations

import dataclasses
import re

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import tiny_config

from kinema.core.cli import build_cli
from kinema.train.config import TrainConfig


def _config_keys() -> list[str]:
    keys = []
    for section in dataclasses.fields(TrainConfig):
        default = getattr(TrainConfig(), section.name)
        if dataclasses.is_dataclass(default):
            keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(default)]
        else:
            keys.append(section.name)
    return keys


NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
KEYS = st.one_of(
    st.sampled_from(_config_keys()),
    st.sampled_from(["model", "optim", "data", "checkpoint"]),  # whole sections
    st.builds("model.kwargs.{}".format, NAME),
    st.builds("{}.{}".format, NAME, NAME),
    st.text("abcdefghijklmnopqrstuvwxyz_.", max_size=20),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
# values a config could hold, so that the checks past the field rules (model, objective, paths, resume) run too
PLAUSIBLE = st.one_of(
    st.integers(0, 8), st.floats(0, 1), st.sampled_from([
        "STDiT-S/2", "STDiT2-S/2", "LatteT2V-S/122", "iddpm", "rflow", "ddim", "tiny-t5", "t5", "causal-video-vae",
        "sd-vae-framewise", "latest", "synthetic", "table", "features", "gloo", "ddp", "fsdp", "bf16", "fp32", ".",
        "/", "missing/folder", {"mask_no": 0.5, "mask_quarter_head": 0.5}, {"256": {"4": [1.0, 2]}}, [16, 16],
        {"depth": 1}, {"hidden_size": 24}, {"max_length": 8}]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAME, inner, max_size=3),
                      max_leaves=6)
RAW = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=16)  # what a shell passes as is

def _override(key, value) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()}"


PLAUSIBLE_OVERRIDE = st.builds(_override, st.sampled_from(_config_keys()), PLAUSIBLE)
OVERRIDE = st.one_of(
    PLAUSIBLE_OVERRIDE,
    st.builds(_override, KEYS, VALUES),
    st.builds("{}={}".format, KEYS, RAW),
    RAW,  # no '=' at all
)

UNHANDLED = re.compile(r"Traceback|KINEMA_DEBUG|Error: [A-Z]\w*(Error|Exception)\b")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(overrides=st.lists(OVERRIDE, min_size=1, max_size=3))
def test_any_overrides_give_a_result_or_one_line_errors(tmp_path, overrides):
    path = tmp_path / "c.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run").to_dict()))
    result = CliRunner().invoke(build_cli(), ["train", str(path), "--check", *overrides])
    assert result.exit_code in (0, 1, 2), (overrides, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (overrides, result.exception)
    assert not UNHANDLED.search(result.output), (overrides, result.output)
    if result.exit_code == 1:
        assert all(line.startswith("Error: ") for line in result.output.strip().splitlines()), result.output
    assert not (tmp_path / "run").exists()  # a check never trains
