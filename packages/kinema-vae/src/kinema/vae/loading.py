"""Load a video VAE from a folder: kinema saves, the upstream Open-Sora-Plan layout, or an SD AutoencoderKL.

Upstream layout (`LanguageBind/Open-Sora-Plan-v1.0.0/vae`): config.json with the release fields
(module classes as strings) + diffusion_pytorch_model.safetensors, or a Lightning `*.ckpt`
(`state_dict` inside). Keys under `loss.` (LPIPS/discriminator) are dropped, as upstream does;
everything else must match exactly.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from kinema.core import KinemaError
from kinema.core.weights import check_config_matches_weights, mismatch_error

from .causal_vae import CausalVideoVAE
from .framewise import FramewiseSDVAE

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise KinemaError(f"{str(folder)!r} has no config.json; point at a VAE folder (config.json + weights)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{str(path)!r} is not valid JSON: {exc}") from None


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Weights of a VAE folder, without unpickling code (safetensors or weights_only torch.load)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
    ckpts = sorted(folder.glob("*.ckpt"))
    if ckpts:  # Lightning checkpoint of the upstream trainer: the last one, as upstream
        obj = torch.load(ckpts[-1], map_location="cpu", weights_only=True)
        return obj.get("state_dict", obj)
    raise KinemaError(f"{str(folder)!r} has no weights: expected one of {', '.join(WEIGHT_FILES)} or a *.ckpt file")


@contextlib.contextmanager
def config_must_match_weights(model_cls, folder: Path):
    """A diffusers load that fails because config.json does not describe the weights raises one line saying so
    (torch and diffusers print a line per parameter)."""
    try:
        yield
    except (RuntimeError, ValueError):
        check_config_matches_weights(model_cls, folder)  # raises when the config is the cause
        raise


def load_causal_vae(folder: str | Path, attn_impl: str | None = None) -> CausalVideoVAE:
    """CausalVideoVAE from a kinema or upstream folder; loss.* keys ignored, all others strict."""
    folder = Path(folder)
    config = _read_config(folder)
    if attn_impl is not None:
        config["attn_impl"] = attn_impl
    model = CausalVideoVAE.from_config(config)
    state = {k: v for k, v in read_state_dict(folder).items() if not k.startswith("loss.")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise KinemaError(
            f"weights in {str(folder)!r} do not match the config: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); check that config.json belongs to these weights"
        )
    error = mismatch_error(folder, {k: tuple(v.shape) for k, v in expected.items()},
                           {k: tuple(v.shape) for k, v in state.items()})
    if error is not None:
        raise error
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_vae(folder: str | Path, attn_impl: str | None = None, micro_batch_size: int | None = None):
    """Any supported VAE folder -> a video VAE with the shared interface (see interface.py)."""
    folder = Path(folder)
    if not folder.exists():
        raise KinemaError(f"VAE folder {str(folder)!r} does not exist")
    cls = _read_config(folder).get("_class_name", "")
    if cls == "AutoencoderKL":
        with config_must_match_weights(AutoencoderKL, folder):
            return FramewiseSDVAE.from_autoencoder_kl(folder, micro_batch_size=micro_batch_size).eval()
    if cls == "FramewiseSDVAE":
        with config_must_match_weights(FramewiseSDVAE, folder):
            model = FramewiseSDVAE.from_pretrained(folder, low_cpu_mem_usage=False)
        if micro_batch_size:
            model.micro_batch_size = micro_batch_size
        return model.eval()
    if cls in ("CausalVAEModel", "CausalVideoVAE", ""):
        return load_causal_vae(folder, attn_impl)
    raise KinemaError(f"{str(folder)!r} holds a {cls!r}; supported: CausalVAEModel / CausalVideoVAE, "
                   f"FramewiseSDVAE, AutoencoderKL (used frame-wise)")
