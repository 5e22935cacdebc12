import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from kinema.core import KinemaError
from kinema.core.cli import build_cli
from kinema.dit.convert import CheckpointMismatchError, load
from kinema.dit.latte import LatteT2V

TINY = dict(sample_size=8, num_layers=2, num_attention_heads=2, attention_head_dim=8, caption_channels=12,
            caption_num_tokens=6, video_length=5)


def source_model() -> LatteT2V:
    torch.manual_seed(0)
    return LatteT2V(**TINY).eval()


def outputs(model):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 4, 5, 8, 8, generator=g), torch.randn(2, 6, 12, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([10, 900]), y, torch.tensor([[1, 1, 0, 0, 0, 0], [1] * 6]))


def upstream_config() -> dict:
    """config.json as Open-Sora-Plan's diffusers-based LatteT2V writes it (Transformer2DModel-era fields)."""
    return {
        "_class_name": "LatteT2V", "_diffusers_version": "0.24.0", "activation_fn": "gelu-approximate",
        "attention_bias": True, "attention_head_dim": 8, "attention_mode": "xformers", "attention_type": "default",
        "caption_channels": 12, "cross_attention_dim": 16, "double_self_attention": False, "dropout": 0.0,
        "in_channels": 4, "norm_elementwise_affine": False, "norm_eps": 1e-06, "norm_num_groups": 32,
        "norm_type": "ada_norm_single", "num_attention_heads": 2, "num_embeds_ada_norm": 1000, "num_layers": 2,
        "num_vector_embeds": None, "only_cross_attention": False, "out_channels": 8, "patch_size": 2,
        "patch_size_t": 1, "sample_size": 8, "upcast_attention": False, "use_linear_projection": False,
        "video_length": 5,
    }


def write_diffusers_folder(path, model, config=None):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config or upstream_config()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state = {k: v for k, v in state.items() if k != "caption_projection.y_embedding"}
    # upstream keeps the null caption as a tensor of the caption projection
    state["caption_projection.y_embedding"] = model.caption_projection.y_embedding.clone()
    save_file(state, path / "diffusion_pytorch_model.safetensors")
    return path


def test_diffusers_folder_reproduces_the_source_model(tmp_path):
    source = source_model()
    converted = load("latte", write_diffusers_folder(tmp_path / "17x256x256", source))
    assert converted.config.video_length == 5 and converted.config.num_layers == 2
    assert torch.equal(outputs(converted), outputs(source))


def test_latte_t2v_pt_reproduces_the_source_model(tmp_path):
    source = source_model()
    state = dict(source.state_dict())
    # tables some upstream versions persisted: dropped and recomputed
    state["temp_pos_embed"] = source.temp_pos_embed.clone()
    state["pos_embed.pos_embed"] = source.pos_embed.pos_embed.clone()
    torch.save({"model": state}, tmp_path / "t2v.pt")
    converted = load("latte", tmp_path / "t2v.pt", num_attention_heads=2, sample_size=8, video_length=5)
    assert converted.config.attention_head_dim == 8  # hidden size 16 kept
    assert torch.equal(outputs(converted), outputs(source))


def test_missing_extra_and_misshapen_keys_are_listed(tmp_path):
    state = dict(source_model().state_dict())
    del state["transformer_blocks.1.attn2.to_k.weight"]
    state["transformer_blocks.1.attn3.to_k.weight"] = torch.zeros(16, 16)
    state["proj_out.bias"] = torch.zeros(31)
    torch.save({"model": state}, tmp_path / "t2v.pt")
    with pytest.raises(CheckpointMismatchError) as info:
        load("latte", tmp_path / "t2v.pt", num_attention_heads=2, sample_size=8)
    message = str(info.value)
    assert "missing keys (1): transformer_blocks.1.attn2.to_k.weight" in message
    assert "unexpected keys (1): transformer_blocks.1.attn3.to_k.weight" in message
    assert "proj_out.bias (31,) vs model (32,)" in message


def test_sample_size_written_as_height_width(tmp_path):
    source = source_model()
    folder = write_diffusers_folder(tmp_path / "m", source, {**upstream_config(), "sample_size": [8, 8]})
    assert torch.equal(outputs(load("latte", folder)), outputs(source))


def test_config_that_is_not_latte_t2v_is_refused(tmp_path):
    config = {**upstream_config(), "norm_type": "layer_norm"}
    folder = write_diffusers_folder(tmp_path / "m", source_model(), config)
    with pytest.raises(KinemaError, match="norm_type='layer_norm' is not supported"):
        load("latte", folder)


def test_unknown_config_fields_are_reported(tmp_path):
    folder = write_diffusers_folder(tmp_path / "m", source_model(), {**upstream_config(), "use_rope": True})
    with pytest.warns(UserWarning, match="use_rope"):
        load("latte", folder)


def test_pickled_code_is_not_loaded(tmp_path):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "t2v.pt")  # a pickled module, not tensors
    with pytest.raises(KinemaError, match="weights_only"):
        load("latte", tmp_path / "t2v.pt")


def test_wrapper_without_state_dict_names_its_keys(tmp_path):
    torch.save({"optimizer": {"lr": torch.tensor(1.0)}, "step": 3}, tmp_path / "t2v.pt")
    with pytest.raises(KinemaError, match="top-level keys are: 'optimizer', 'step'"):
        load("latte", tmp_path / "t2v.pt")


# ---------------------------------------------------------------------------------------------------------------
# kinema dit convert
# ---------------------------------------------------------------------------------------------------------------

def test_cli_writes_a_loadable_folder_and_keeps_existing_output(tmp_path):
    source = source_model()
    src = write_diffusers_folder(tmp_path / "upstream", source)
    out = tmp_path / "converted"
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["dit", "convert", "--format", "latte", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert torch.equal(outputs(LatteT2V.from_pretrained(out).eval()), outputs(source))

    again = runner.invoke(build_cli(), ["dit", "convert", "--format", "latte", str(src), "-o", str(out)])
    assert again.exit_code != 0 and "already exists" in again.output and "Traceback" not in again.output

    # A failing conversion with --overwrite leaves the previous output as it was, and no temporary folders.
    before = (out / "diffusion_pytorch_model.safetensors").read_bytes()
    (src / "config.json").write_text(json.dumps({**upstream_config(), "num_layers": 3}))
    failed = runner.invoke(build_cli(), ["dit", "convert", "--format", "latte", str(src), "-o", str(out),
                                         "--overwrite"])
    assert failed.exit_code != 0 and "missing keys" in failed.output
    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "upstream"]


def test_cli_overrides_and_overwrite(tmp_path):
    source = source_model()
    torch.save({"model": source.state_dict()}, tmp_path / "t2v.pt")
    out = tmp_path / "converted"
    out.mkdir()
    args = ["dit", "convert", "--format", "latte", str(tmp_path / "t2v.pt"), "-o", str(out), "--overwrite",
            "--set", "num_attention_heads=2", "--set", "sample_size=8", "--set", "video_length=17",
            "--set", "attention=math"]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    loaded = LatteT2V.from_pretrained(out)
    assert (loaded.config.video_length, loaded.config.attention, loaded.temp_interpolation_scale) == (17, "math", 3)


def test_cli_rejects_target_for_latte_and_bad_override(tmp_path):
    torch.save({"model": source_model().state_dict()}, tmp_path / "t2v.pt")
    runner = CliRunner()
    base = ["dit", "convert", "--format", "latte", str(tmp_path / "t2v.pt"), "-o", str(tmp_path / "o")]
    result = runner.invoke(build_cli(), base + ["--target", "stdit2"])
    assert result.exit_code != 0 and "only chosen for --format pixart" in result.output
    result = runner.invoke(build_cli(), base + ["--set", "video_length"])
    assert result.exit_code != 0 and "KEY=VALUE" in result.output
