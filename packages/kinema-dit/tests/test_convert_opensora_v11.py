import json

import pytest
import torch
from safetensors.torch import save_file

from kinema.core import KinemaError
from kinema.dit.convert import CheckpointMismatchError, load
from kinema.dit.stdit2 import STDiT2


def tiny_stdit2(tiny, randomize, **overrides):
    torch.manual_seed(0)
    return randomize(STDiT2(**tiny, qk_norm=True, input_sq_size=64, **overrides)).eval()


@pytest.fixture
def source(tiny, randomize):
    """The upstream model: it computes as Open-Sora 1.1's released code."""
    return tiny_stdit2(tiny, randomize, final_layer_legacy=True, no_temporal_pos_emb_legacy=True)


def hub_config(**changes) -> dict:
    """config.json as transformers saves Open-Sora 1.1's STDiT2Config (tiny sizes)."""
    config = {
        "architectures": ["STDiT2"], "caption_channels": 16, "class_dropout_prob": 0.1, "depth": 2,
        "drop_path": 0.0, "enable_flash_attn": False, "enable_layernorm_kernel": False, "freeze": None,
        "hidden_size": 48, "in_channels": 4, "input_size": [None, None, None], "input_sq_size": 64,
        "mlp_ratio": 4.0, "model_max_length": 6, "model_type": "STDiT2", "no_temporal_pos_emb": False,
        "num_heads": 4, "patch_size": [1, 2, 2], "pred_sigma": True, "qk_norm": True, "torch_dtype": "float32",
        "transformers_version": "4.36.2",
    }
    return {**config, **changes}


def write_hub_folder(folder, model, config=None, shards=1):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config or hub_config()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if shards == 1:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        return folder
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i::shards]}
        save_file(part, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def outputs(model, captions, x_mask=None):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, 10, 12, generator=g)
    y, mask = captions(2)
    sizes = dict(num_frames=torch.tensor([3.0, 3.0]), height=torch.tensor([80.0, 80.0]),
                 width=torch.tensor([96.0, 96.0]), ar=torch.tensor([0.83, 0.83]), fps=torch.tensor([24.0, 8.0]))
    with torch.no_grad():
        return model(x, torch.tensor([17, 640]), y, mask, x_mask=x_mask, **sizes)


@pytest.mark.parametrize("shards", [1, 3])
def test_hub_folder_reproduces_the_source_model(tmp_path, source, captions, shards):
    converted = load("opensora-v1.1", write_hub_folder(tmp_path / "stage3", source, shards=shards))
    assert converted.config.qk_norm and converted.config.qk_norm_legacy and converted.config.input_sq_size == 64
    assert converted.config.final_layer_legacy and converted.config.no_temporal_pos_emb_legacy
    assert torch.equal(outputs(converted, captions), outputs(source, captions))
    x_mask = torch.tensor([[False, True, True], [True, True, True]])
    assert torch.equal(outputs(converted, captions, x_mask), outputs(source, captions, x_mask))


def test_state_dict_file(tmp_path, source, captions):
    torch.save({"model": source.state_dict()}, tmp_path / "ckpt.pt")
    converted = load("opensora-v1.1", tmp_path / "ckpt.pt", num_heads=4, input_sq_size=64)
    assert converted.config.qk_norm
    assert converted.config.final_layer_legacy and converted.config.no_temporal_pos_emb_legacy
    assert torch.equal(outputs(converted, captions), outputs(source, captions))
    x_mask = torch.tensor([[False, True, True], [True, True, True]])
    assert torch.equal(outputs(converted, captions, x_mask), outputs(source, captions, x_mask))


def test_converted_weights_compute_as_released_unless_told(tmp_path, tiny, randomize, source, captions):
    """Given frames through the released double-norm final layer, RoPE despite no_temporal_pos_emb=true in the
    upstream config; --set ..._legacy=false gives kinema's corrected computation (a fresh STDiT2's)."""
    folder = write_hub_folder(tmp_path / "m", source, hub_config(no_temporal_pos_emb=True))
    released = load("opensora-v1.1", folder)
    corrected = load("opensora-v1.1", folder, final_layer_legacy=False, no_temporal_pos_emb_legacy=False)
    fresh = tiny_stdit2(tiny, randomize, no_temporal_pos_emb=True)  # constructor defaults, same weights
    x_mask = torch.tensor([[False, True, True], [True, False, True]])
    for mask in (None, x_mask):
        assert torch.equal(outputs(released, captions, mask), outputs(source, captions, mask))
        assert torch.equal(outputs(corrected, captions, mask), outputs(fresh, captions, mask))
        assert (outputs(corrected, captions, mask) - outputs(released, captions, mask)).abs().max() > 1e-4
    only_final_layer = load("opensora-v1.1", folder, final_layer_legacy=False)  # RoPE kept: denoised frames agree
    frames = x_mask[:, None, :, None, None].expand(2, 8, 3, 10, 12)
    assert torch.equal(outputs(only_final_layer, captions, x_mask)[frames], outputs(source, captions, x_mask)[frames])
    assert (outputs(only_final_layer, captions, x_mask) - outputs(source, captions, x_mask)).abs().max() > 1e-3


def test_other_model_type_is_refused(tmp_path, source):
    folder = write_hub_folder(tmp_path / "m", source, hub_config(model_type="STDiT3"))
    with pytest.raises(KinemaError, match="model_type is 'STDiT3'"):
        load("opensora-v1.1", folder)


def test_config_disagreeing_with_weights(tmp_path, source):
    folder = write_hub_folder(tmp_path / "m", source, hub_config(qk_norm=False))
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(8\): blocks.0.attn.k_norm.weight"):
        load("opensora-v1.1", folder)


def test_missing_rope_freqs_is_an_error(tmp_path, source):
    folder = write_hub_folder(tmp_path / "m", source)
    state = {k: v.contiguous() for k, v in source.state_dict().items() if k != "rope.freqs"}
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): rope.freqs"):
        load("opensora-v1.1", folder)


def test_unknown_config_fields_warn(tmp_path, source):
    folder = write_hub_folder(tmp_path / "m", source, hub_config(enable_sequence_parallelism=False, new_knob=3))
    with pytest.warns(UserWarning, match="new_knob"):
        load("opensora-v1.1", folder)


def test_folder_without_weights(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(hub_config()))
    with pytest.raises(KinemaError, match="has none of model.safetensors"):
        load("opensora-v1.1", tmp_path / "m")
