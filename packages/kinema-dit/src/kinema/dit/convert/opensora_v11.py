"""Open-Sora 1.1 Hugging Face models (`hpcai-tech/OpenSora-STDiT-v2-stage3`) -> kinema STDiT2.

Layout: a folder with config.json (a transformers PretrainedConfig, model_type "STDiT2") and
model.safetensors (or shards listed in model.safetensors.index.json, or pytorch_model.bin). The parameter
names are the same on both sides, `rope.freqs` included. A bare state-dict file (a local v1.1 training
checkpoint) also loads: its sizes are read off the shapes and `qk_norm` off the presence of QK-norm weights.

The upstream config does not say in which order RoPE and QK-norm were applied; v1.1 weights were trained
with RoPE first, which is kinema's `qk_norm_legacy=True` default. The model also computes what the released
code computes where kinema's fresh STDiT2 differs (`AS_RELEASED`): given frames normalised twice in the final
layer, and RoPE applied whatever `no_temporal_pos_emb` says.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from kinema.core import KinemaError

from ..stdit2 import STDiT2
from .checkpoint import load_strict, read_json, read_state_dict, unwrap
from .pixart_family import sizes_from_state_dict

# upstream STDiT2Config fields that are kinema STDiT2 config fields of the same meaning
CONFIG_FIELDS = ("input_sq_size", "in_channels", "patch_size", "hidden_size", "depth", "num_heads", "mlp_ratio",
                 "class_dropout_prob", "pred_sigma", "drop_path", "no_temporal_pos_emb", "caption_channels",
                 "model_max_length", "qk_norm", "qk_norm_legacy", "final_layer_legacy", "no_temporal_pos_emb_legacy",
                 "attention")
# the released code's behaviour where a fresh kinema STDiT2 differs (False in each gives kinema's)
AS_RELEASED = {"final_layer_legacy": True, "no_temporal_pos_emb_legacy": True}
# unused upstream (`input_size`), training-only (`freeze`), kernel choices (kinema picks them with `attention`),
# and the bookkeeping fields transformers writes into every config
IGNORED_FIELDS = {"input_size", "freeze", "enable_flash_attn", "enable_flashattn", "enable_layernorm_kernel",
                  "enable_sequence_parallelism", "architectures", "auto_map", "torch_dtype", "dtype",
                  "transformers_version", "model_type", "_name_or_path", "_commit_hash", "_attn_implementation"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
WRAPPERS = ("ema", "model", "state_dict")


def config_from_upstream(upstream: dict, source: str) -> dict:
    if upstream.get("model_type") != "STDiT2":
        raise KinemaError(f"{source}: model_type is {upstream.get('model_type')!r}, not 'STDiT2'; "
                       "for Open-Sora 1.0 .pth files use --format opensora-v1")
    kwargs = {k: upstream[k] for k in CONFIG_FIELDS if upstream.get(k) is not None}
    if "patch_size" in kwargs:
        kwargs["patch_size"] = tuple(kwargs["patch_size"])
    if upstream.get("freeze") not in (None, "none"):
        warnings.warn(f"{source}: freeze={upstream['freeze']!r} is a training option; kinema-train sets "
            "it", stacklevel=2)
    unknown = sorted(set(upstream) - set(CONFIG_FIELDS) - IGNORED_FIELDS)
    if unknown:
        warnings.warn(f"{source}: ignoring unknown config fields {', '.join(unknown)}", stacklevel=2)
    return kwargs


def read_folder_weights(folder: Path) -> dict:
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise KinemaError(f"{folder} has none of {', '.join(WEIGHT_FILES)}")
    if weights.name.endswith(".index.json"):  # sharded: {"weight_map": {key: shard file}}
        try:
            shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        except (KeyError, json.JSONDecodeError) as exc:
            raise KinemaError(f"{weights} is not a safetensors shard index: {exc}") from None
        state = {}
        for shard in shards:
            state.update(read_state_dict(folder / shard))
        return state
    return unwrap(read_state_dict(weights), WRAPPERS, str(weights))


def load_opensora_v11(src: str | Path, **overrides) -> STDiT2:
    """An STDiT2 with the weights of `src` (a Hugging Face STDiT2 folder or a state-dict file)."""
    src = Path(src)
    if src.is_dir():
        kwargs = config_from_upstream(read_json(src / "config.json"), str(src / "config.json"))
        state = read_folder_weights(src)
    else:
        state = unwrap(read_state_dict(src), WRAPPERS, str(src))
        kwargs = sizes_from_state_dict(state, str(src))
        kwargs["qk_norm"] = "blocks.0.attn.q_norm.weight" in state
        kwargs["input_sq_size"] = 512  # the v1.1 configs' value; it sets the pixel scale of the position table
    model = STDiT2(**{**AS_RELEASED, **kwargs, **overrides})
    return load_strict(model, state, source=str(src)).eval()
