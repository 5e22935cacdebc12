import json

import pytest
import torch

from kinema.core import KinemaError
from kinema.dit.convert import CheckpointMismatchError, load
from kinema.dit.stdit import STDiT

INPUT_SIZE = (4, 8, 8)


@pytest.fixture
def source(tiny, randomize):
    torch.manual_seed(0)
    model = STDiT(**tiny, input_size=INPUT_SIZE, space_scale=0.5, time_scale=2 / 3)
    return randomize(model).eval()  # attn_temp and the zero-initialised projections get non-zero weights


def outputs(model, captions, x_mask=None):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, *INPUT_SIZE, generator=g)
    y, mask = captions(2)
    with torch.no_grad():
        return model(x, torch.tensor([17, 640]), y, mask, x_mask=x_mask)


@pytest.mark.parametrize("wrapper", [None, "ema", "model", "state_dict"])
def test_checkpoint_reproduces_the_source_model(tmp_path, source, captions, wrapper):
    state = source.state_dict()
    assert {"pos_embed", "pos_embed_temporal"} <= set(state)  # saved as upstream saves them
    torch.save(state if wrapper is None else {wrapper: state, "step": 10}, tmp_path / "ckpt.pth")
    converted = load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4)
    assert tuple(converted.config.input_size) == INPUT_SIZE
    assert (converted.config.space_scale, converted.config.time_scale) == (0.5, 2 / 3)
    assert torch.equal(outputs(converted, captions), outputs(source, captions))


def test_ema_is_preferred_over_model(tmp_path, source, captions):
    other = {k: torch.zeros_like(v) for k, v in source.state_dict().items()}
    torch.save({"model": other, "ema": source.state_dict()}, tmp_path / "ckpt.pth")
    assert torch.equal(outputs(load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4), captions),
                       outputs(source, captions))


def test_safetensors_without_position_tables(tmp_path, source, captions):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in source.state_dict().items() if not k.startswith("pos_embed")}
    save_file(state, tmp_path / "ckpt.safetensors")
    converted = load("opensora-v1", tmp_path / "ckpt.safetensors", num_heads=4, input_size=list(INPUT_SIZE),
                     space_scale=0.5, time_scale=2 / 3)
    assert torch.equal(outputs(converted, captions), outputs(source, captions))


def test_converted_checkpoint_computes_given_frames_as_released(tmp_path, tiny, randomize, source, captions):
    torch.save(source.state_dict(), tmp_path / "ckpt.pth")
    released = load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4)
    assert released.config.final_layer_legacy
    upstream = randomize(STDiT(**tiny, input_size=INPUT_SIZE, space_scale=0.5, time_scale=2 / 3,
                               final_layer_legacy=True)).eval()
    x_mask = torch.tensor([[True, False, True, False], [False, False, True, True]])
    assert torch.equal(outputs(released, captions, x_mask), outputs(upstream, captions, x_mask))
    corrected = load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4, final_layer_legacy=False)
    assert torch.equal(outputs(corrected, captions, x_mask), outputs(source, captions, x_mask))
    assert (outputs(corrected, captions, x_mask) - outputs(released, captions, x_mask)).abs().max() > 1e-3


@pytest.mark.parametrize("name,wrong,saved", [("space_scale", 1.0, "0.5"), ("time_scale", 0.5, "0.666667")])
def test_a_given_scale_must_reproduce_the_saved_table(tmp_path, source, captions, name, wrong, saved):
    torch.save(source.state_dict(), tmp_path / "ckpt.pth")
    table = "pos_embed" if name == "space_scale" else "pos_embed_temporal"
    with pytest.raises(KinemaError, match=rf"{name}={wrong} does not reproduce the checkpoint's {table}, saved "
                                          rf"with {name}={saved}; pass that value or leave {name} unset"):
        load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4, **{name: wrong})
    right = load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4, space_scale=0.5, time_scale=2 / 3)
    assert torch.equal(outputs(right, captions), outputs(source, captions))


def test_without_position_tables_the_size_and_scales_are_required(tmp_path, source):
    state = source.state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("pos_embed")}, tmp_path / "bare.pth")
    with pytest.raises(KinemaError, match=r"no pos_embed or pos_embed_temporal.*pass input_size, space_scale, "
                                          r"time_scale .*input_size=\[16,32,32\] space_scale=0.5 time_scale=1.0"):
        load("opensora-v1", tmp_path / "bare.pth", num_heads=4)
    with pytest.raises(KinemaError, match=r"pass space_scale, time_scale \("):
        load("opensora-v1", tmp_path / "bare.pth", num_heads=4, input_size=list(INPUT_SIZE))
    # only the temporal table missing: its frames (input_size) and time_scale are what is unknown
    del state["pos_embed_temporal"]
    torch.save(state, tmp_path / "no-temporal.pth")
    with pytest.raises(KinemaError, match=r"no pos_embed_temporal, .*: pass input_size, time_scale \("):
        load("opensora-v1", tmp_path / "no-temporal.pth", num_heads=4)


def test_missing_and_unexpected_keys(tmp_path, source):
    state = source.state_dict()
    del state["blocks.1.attn_temp.qkv.bias"]
    state["blocks.1.attn_temporal.qkv.bias"] = torch.zeros(144)
    torch.save({"ema": state}, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): blocks.1.attn_temp.qkv.bias"):
        load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4)


def test_wrong_shapes_are_listed(tmp_path, source):
    state = source.state_dict()
    state["blocks.0.cross_attn.kv_linear.weight"] = torch.zeros(48, 48)
    torch.save(state, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointMismatchError, match=r"blocks.0.cross_attn.kv_linear.weight \(48, 48\) vs model"):
        load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4)


def test_not_an_stdit_checkpoint(tmp_path):
    torch.save({"model": {"weight": torch.zeros(2)}}, tmp_path / "ckpt.pth")
    with pytest.raises(KinemaError, match="not a PixArt/STDiT state dict"):
        load("opensora-v1", tmp_path / "ckpt.pth")


def test_cli_writes_a_folder_that_loads_back(tmp_path, source, captions):
    from click.testing import CliRunner

    from kinema.core.cli import build_cli

    torch.save({"ema": source.state_dict()}, tmp_path / "ckpt.pth")
    out = tmp_path / "stdit"
    args = ["dit", "convert", "--format", "opensora-v1", str(tmp_path / "ckpt.pth"), "-o", str(out),
            "--set", "num_heads=4"]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    assert torch.equal(outputs(STDiT.from_pretrained(out).eval(), captions), outputs(source, captions))
    assert json.loads((out / "config.json").read_text())["final_layer_legacy"] is True  # written as released
