"""A config.json that does not describe the weights is one line naming folder, parameters, count and fix."""

import json

import pytest
from kinema.core import KinemaError

from kinema.dit.latte import LatteT2V
from kinema.dit.stdit2 import STDiT2


def _tiny_stdit2():
    return STDiT2(input_sq_size=32, in_channels=4, patch_size=(1, 2, 2), hidden_size=48, depth=2, num_heads=4,
                  caption_channels=32, model_max_length=16)


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("low_cpu_mem_usage", [False, True])
def test_wrong_hidden_size_is_one_line_with_the_fix(tmp_path, low_cpu_mem_usage):
    _tiny_stdit2().save_pretrained(tmp_path / "model")
    _edit_config(tmp_path / "model", hidden_size=96)
    with pytest.raises(KinemaError) as err:
        STDiT2.from_pretrained(tmp_path / "model", low_cpu_mem_usage=low_cpu_mem_usage)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "model") in message
    assert "x_embedder.proj.weight: weights [48, 4, 1, 2, 2], config [96, 4, 1, 2, 2]" in message
    assert " more)" in message and "parameters differ in shape" in message
    assert "re-export the model, or fix hidden_size / depth" in message


def test_other_load_failures_are_left_as_they_are(tmp_path):
    _tiny_stdit2().save_pretrained(tmp_path / "model")
    weights = next((tmp_path / "model").glob("*.safetensors"))
    weights.write_bytes(b"not safetensors")
    with pytest.raises(Exception) as err:
        STDiT2.from_pretrained(tmp_path / "model")
    assert not isinstance(err.value, KinemaError) or "differ in shape" not in str(err.value)


def test_latte_family_loads_through_the_same_check(tmp_path):
    model = LatteT2V(sample_size=8, num_layers=1, num_attention_heads=2, attention_head_dim=8, caption_channels=12,
                     caption_num_tokens=6)
    model.save_pretrained(tmp_path / "latte")
    _edit_config(tmp_path / "latte", attention_head_dim=16)
    with pytest.raises(KinemaError, match=r"parameters differ in shape .*; the config.json does not describe"):
        LatteT2V.from_pretrained(tmp_path / "latte")
