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


def outputs(model, captions):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, *INPUT_SIZE, generator=g)
    y, mask = captions(2)
    with torch.no_grad():
        return model(x, torch.tensor([17, 640]), y, mask)


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


def test_wrong_space_scale_is_caught_by_the_saved_table(tmp_path, source):
    torch.save(source.state_dict(), tmp_path / "ckpt.pth")
    with pytest.raises(KinemaError, match="pos_embed differs .* space_scale"):
        load("opensora-v1", tmp_path / "ckpt.pth", num_heads=4, space_scale=1.0)


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
