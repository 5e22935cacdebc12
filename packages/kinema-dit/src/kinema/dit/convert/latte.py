"""Open-Sora-Plan 1.0 LatteT2V checkpoints -> kinema LatteT2V.

Two upstream layouts:
- a diffusers folder (`LanguageBind/Open-Sora-Plan-v1.0.0/17x256x256`): config.json (class LatteT2V) and
  diffusion_pytorch_model.safetensors (or .bin);
- Latte's `t2v.pt` ({"model": state_dict}), which Open-Sora-Plan starts training from. It has no config, so
  sizes are read off the weight shapes; heads, latent size and video length come from the defaults
  (16 heads, 32x32 latents, 5 latent frames) or from overrides.

The parameter names are the same on both sides. Dropped if present: the fixed sin-cos tables
`pos_embed.pos_embed` and `temp_pos_embed` (recomputed from the config).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from kinema.core import KinemaError

from ..latte import LatteT2V
from .checkpoint import load_strict, read_json, read_state_dict, unwrap

RECOMPUTED = ("pos_embed.pos_embed", "temp_pos_embed")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

# upstream config.json field -> kinema LatteT2V config field
CONFIG_FIELDS = {name: name for name in (
    "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "num_layers", "sample_size",
    "patch_size", "caption_channels", "video_length", "norm_eps", "dropout", "caption_num_tokens", "attention")}
# Fields whose value is fixed in this architecture: anything else is a different model.
REQUIRED_VALUES = {"norm_type": "ada_norm_single", "activation_fn": "gelu-approximate", "attention_bias": True,
                   "norm_elementwise_affine": False}
# Transformer2DModel-era fields without effect for ada_norm_single Latte, and run-time choices.
IGNORED_FIELDS = {"attention_mode", "patch_size_t", "num_embeds_ada_norm", "cross_attention_dim",
                  "use_linear_projection", "only_cross_attention", "double_self_attention", "upcast_attention",
                  "num_vector_embeds", "norm_num_groups", "attention_type", "use_first_frame", "use_image_num"}


def config_from_upstream(upstream: dict, source: str = "config.json") -> dict:
    """kinema LatteT2V kwargs from an upstream (diffusers) config, refusing values this model cannot express."""
    for name, value in REQUIRED_VALUES.items():
        if name in upstream and upstream[name] != value:
            raise KinemaError(f"{source}: {name}={upstream[name]!r} is not supported (LatteT2V needs {value!r})")
    kwargs = {CONFIG_FIELDS[k]: v for k, v in upstream.items() if k in CONFIG_FIELDS and v is not None}
    if isinstance(kwargs.get("sample_size"), (list, tuple)):  # Open-Sora-Plan writes the latent (h, w)
        height, width = kwargs["sample_size"]
        if height != width:
            raise KinemaError(f"{source}: sample_size {height}x{width} is not square; LatteT2V lays its position "
                           "table out for square latents")
        kwargs["sample_size"] = height
    inner = upstream.get("num_attention_heads", 16) * upstream.get("attention_head_dim", 72)
    if upstream.get("cross_attention_dim") not in (None, inner):
        raise KinemaError(f"{source}: cross_attention_dim={upstream['cross_attention_dim']} must equal the hidden "
                       f"size {inner} (captions are projected to it)")
    unknown = sorted(set(upstream) - set(CONFIG_FIELDS) - set(REQUIRED_VALUES) - IGNORED_FIELDS
                     - {k for k in upstream if k.startswith("_")})
    if unknown:
        warnings.warn(f"{source}: ignoring unknown config fields {', '.join(unknown)}", stacklevel=2)
    return kwargs


def config_from_state_dict(state: dict) -> dict:
    """Sizes that the weight shapes determine (Latte's t2v.pt has no config)."""
    try:
        hidden, in_channels, patch, _ = state["pos_embed.proj.weight"].shape
        num_layers = len({k.split(".")[1] for k in state if k.startswith("transformer_blocks.")})
        kwargs = {
            "in_channels": in_channels, "patch_size": patch, "num_layers": num_layers,
            "caption_channels": state["caption_projection.linear_1.weight"].shape[1],
            "out_channels": state["proj_out.weight"].shape[0] // (patch * patch),
        }
    except KeyError as exc:
        raise KinemaError(f"not a LatteT2V state dict: it has no {exc.args[0]!r}") from None
    heads = 16 if hidden % 16 == 0 else 1
    kwargs.update(num_attention_heads=heads, attention_head_dim=hidden // heads)
    return kwargs


def load_latte(src: str | Path, **overrides) -> LatteT2V:
    """A LatteT2V with the weights of `src` (a diffusers folder or a `.pt`/`.pth`/`.safetensors` file)."""
    src = Path(src)
    if src.is_dir():
        weights = next((src / name for name in WEIGHT_FILES if (src / name).is_file()), None)
        if weights is None:
            raise KinemaError(f"{src} has none of {', '.join(WEIGHT_FILES)}")
        kwargs = config_from_upstream(read_json(src / "config.json"), str(src / "config.json"))
        state = unwrap(read_state_dict(weights), (), str(weights))
    else:
        state = unwrap(read_state_dict(src), ("model", "ema", "state_dict"), str(src))
        kwargs = config_from_state_dict(state)
        if "num_attention_heads" in overrides and "attention_head_dim" not in overrides:  # keep the hidden size
            hidden = kwargs["num_attention_heads"] * kwargs["attention_head_dim"]
            kwargs["attention_head_dim"] = hidden // overrides["num_attention_heads"]
    for key in RECOMPUTED:
        state.pop(key, None)
    if "caption_projection.y_embedding" in state:  # its length is in no upstream config
        kwargs.setdefault("caption_num_tokens", state["caption_projection.y_embedding"].shape[0])
    model = LatteT2V(**{**kwargs, **overrides})
    return load_strict(model, state, source=str(src)).eval()
