"""Every YAML under configs/ (a new one is picked up by the glob): `kinema train CONFIG --check` names each path
it points at that does not exist, passes once those paths point at tiny stand-ins written here, and the config
trains 2 steps on CPU with tiny overrides keyed by what it names (model family, VAE, data source)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from kinema.core.cli import build_cli
from kinema.train.check import HUB_ID
from kinema.train.config import load_config

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
PATH_FIELDS = ("model.pretrained", "vae.pretrained", "text_encoder.pretrained", "data.path", "data.root")
H = W = 16  # pixels of the tiny clips
CAPTION = {"channels": 32, "length": 16}


# ---------------------------------------------------------------------------------------------
# stand-ins for what the configs point at
# ---------------------------------------------------------------------------------------------


def tiny_causal_vae(folder: Path) -> None:
    from kinema.vae.causal_vae import CausalVideoVAE, tiny_config

    CausalVideoVAE(**tiny_config(hidden_size=8, norm_num_groups=4, levels=3)).save_pretrained(folder)


def tiny_sd_vae(folder: Path) -> None:  # the layout of stabilityai/sd-vae-ft-ema, two levels
    from diffusers import AutoencoderKL

    AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                  block_out_channels=[8, 8], layers_per_block=1, latent_channels=4, norm_num_groups=4,
                  sample_size=H).save_pretrained(folder)


STAND_IN_VAES = {"causal-video-vae": tiny_causal_vae, "sd-vae-framewise": tiny_sd_vae}


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """VAE folders by registered name and a table of 4 short clips, written once."""
    from kinema.core.video import write_video

    root = tmp_path_factory.mktemp("stand-ins")
    vaes = {}
    for name, write in STAND_IN_VAES.items():
        write(root / name)
        vaes[name] = str(root / name)
    rows = []
    for i in range(4):
        frames = torch.randint(0, 255, (30, H, W, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(i))
        path = write_video(root / f"clip{i}.mp4", frames, fps=24)
        rows.append({"path": str(path), "text": f"a clip number {i}", "num_frames": 30, "height": H, "width": W})
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    return {"vae": vaes, "table": str(root / "clips.csv"), "empty": str(root)}


def _missing(value, field: str) -> bool:
    if value is None or os.path.exists(value):
        return False
    return not (field == "text_encoder.pretrained" and HUB_ID.fullmatch(value))  # t5 fetches hub ids


def _get(cfg, field: str):
    section, key = field.split(".")
    return getattr(getattr(cfg, section), key)


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: the CLI reads it back as the same value


# ---------------------------------------------------------------------------------------------
# tiny overrides, keyed by what a config names
# ---------------------------------------------------------------------------------------------


def tiny_model_kwargs(family: str, channels: int, latent: tuple[int, int, int]) -> dict:
    t, h, w = latent
    caption = {"caption_channels": CAPTION["channels"], "model_max_length": CAPTION["length"], "in_channels": channels}
    if family in ("STDiT", "DiT"):
        return {"hidden_size": 32, "depth": 1, "num_heads": 4, "input_size": [t, h, w], **caption}
    if family == "STDiT2":
        return {"hidden_size": 48, "depth": 1, "num_heads": 4, "input_sq_size": H, **caption}
    if family == "LatteT2V":
        return {"num_layers": 1, "num_attention_heads": 4, "attention_head_dim": 8, "sample_size": h,
                "video_length": t, "caption_channels": CAPTION["channels"], "caption_num_tokens": CAPTION["length"],
                "in_channels": channels, "out_channels": 2 * channels}
    raise AssertionError(f"no tiny settings for model family {family}; add them to tiny_model_kwargs")


def tiny_overrides(cfg, vae_folder, stand_in_dir: Path, stand_ins) -> list[str]:
    """Overrides that make ``cfg`` train in seconds: tiny model of its family, tiny T5, tiny data of its source."""
    if vae_folder:
        from kinema.vae.loading import load_vae

        vae = load_vae(vae_folder)
        tc, sc, channels = vae.temporal_compression, vae.spatial_compression, vae.latent_channels
    else:  # pixel space
        tc, sc, channels = 1, 1, 3
    frames = 1 + 2 * tc  # 3 latent frames
    latent = (1 + (frames - 1) // tc, H // sc, W // sc)
    family = cfg.model.name.split("-")[0]
    out = [
        _override("model.kwargs", {**cfg.model.kwargs, **tiny_model_kwargs(family, channels, latent)}),
        _override("text_encoder", {"name": "tiny-t5", "pretrained": None,
                                   "kwargs": {"max_length": CAPTION["length"], "hidden_size": CAPTION["channels"]}}),
        _override("data.num_frames", frames), _override("data.image_size", [H, W]), _override("data.batch_size", 2),
        _override("data.bucket_config", None), _override("data.root", None),
        _override("optim.max_steps", 2), _override("parallel", {"tensor": 1, "sequence": 1}),
        _override("checkpoint", {"dir": str(stand_in_dir / "run"), "every": 2}),
        _override("logging", {"every": 1, "progress": False, "tensorboard": False}),
    ]
    if cfg.model.attention not in (None, "sdpa", "math"):  # GPU kernels
        out.append(_override("model.attention", "sdpa"))
    if cfg.data.source == "synthetic":
        out += [_override("data.num_samples", 4), _override("data.holdout", 0)]
    elif cfg.data.source == "table":
        out.append(_override("data.path", stand_ins["table"]))
    else:  # features: latents of the model's size and caption embeddings, as kinema data precompute writes them
        from kinema.data.shards import FeatureShardWriter

        with FeatureShardWriter(stand_in_dir / "features") as writer:
            for i in range(4):
                writer.write({"latents": torch.randn(channels, *latent),
                              "text_emb": torch.randn(CAPTION["length"], CAPTION["channels"])},
                             text=f"clip {i}", num_frames=frames, height=H, width=W, fps=8)
        out.append(_override("data.path", str(stand_in_dir / "features")))
    return out


def path_stand_ins(cfg, stand_in_dir: Path, stand_ins) -> dict[str, str]:
    """field -> stand-in for every path the config names that does not exist (the model's is filled later)."""
    found = {}
    for field in PATH_FIELDS:
        value = _get(cfg, field)
        if not _missing(value, field):
            continue
        if field == "model.pretrained":
            found[field] = str(stand_in_dir / "model")
        elif field == "vae.pretrained":
            assert cfg.vae.name in STAND_IN_VAES, f"no stand-in for VAE {cfg.vae.name}; add one to STAND_IN_VAES"
            found[field] = stand_ins["vae"][cfg.vae.name]
        elif field == "data.path" and cfg.data.source == "features":
            (stand_in_dir / "features").mkdir(parents=True, exist_ok=True)
            found[field] = str(stand_in_dir / "features")
        elif field == "data.path":
            found[field] = stand_ins["table"]
        else:
            found[field] = stand_ins["empty"]
    return found


def write_tiny_model(config: Path, overrides: list[str], folder: Path) -> None:
    """The tiny model's weights where model.pretrained points: the run then loads them as it would the real ones."""
    from safetensors.torch import save_file

    from kinema.train.components import build_model

    cfg = load_config(config, [*overrides, "model.pretrained=null"])
    folder.mkdir(parents=True, exist_ok=True)
    save_file(build_model(cfg.model).state_dict(), str(folder / "diffusion_pytorch_model.safetensors"))


# ---------------------------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:tiny T5 reads at most")  # real captions, cut to the tiny model's 16 tokens
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_config_checks_and_trains(config, tmp_path, stand_ins, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name paths relative to the repository root
    cli, runner = build_cli(), CliRunner()
    cfg = load_config(config, validated=False)

    # as shipped: every path that does not exist is named (field and value); nothing else fails
    stand_in = path_stand_ins(cfg, tmp_path, stand_ins)
    result = runner.invoke(cli, ["train", str(config), "--check"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == len(stand_in), result.output
    for field in stand_in:
        assert any(f"{field}={_get(cfg, field)!r} does not exist" in e for e in errors), result.output
    assert (result.exit_code == 0) == (not stand_in) and "Traceback" not in result.output

    # paths pointed at stand-ins: the check passes and prints the effective config
    paths = [_override(field, value) for field, value in stand_in.items()]
    tiny = tiny_overrides(cfg, stand_in.get("vae.pretrained", cfg.vae.pretrained), tmp_path, stand_ins)
    if "model.pretrained" in stand_in:
        write_tiny_model(config, paths + tiny, Path(stand_in["model.pretrained"]))
    result = runner.invoke(cli, ["train", str(config), "--check", *paths])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == load_config(config, paths).to_dict()

    # tiny: 2 steps on CPU, through the same command
    result = runner.invoke(cli, ["train", str(config), *paths, *tiny])
    assert result.exit_code == 0, result.output
    assert "trained to step 2" in result.output
    assert (tmp_path / "run" / "step-000000002" / "state.json").exists()
