from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from kinema.vae import CausalVideoVAE, tiny_config

DATA = Path(__file__).parent / "data"


def real_clips() -> list[Path]:
    import comfyui_workflow_templates_media_video as pkg

    clips = sorted(Path(pkg.__file__).parent.rglob("*.webp"))
    assert len(clips) > 20, "comfyui-workflow-templates-media-video clips not found"
    return clips


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    return real_clips()


def tiny_autoencoder_kl(seed: int = 0, channels=(8, 16, 16), groups: int = 4) -> AutoencoderKL:
    """A random SD-layout AutoencoderKL; norms and biases perturbed so nothing is trivially zero/one."""
    torch.manual_seed(seed)
    n = len(channels)
    vae = AutoencoderKL(block_out_channels=channels, down_block_types=("DownEncoderBlock2D",) * n,
                        up_block_types=("UpDecoderBlock2D",) * n, norm_num_groups=groups, layers_per_block=1,
                        latent_channels=4, sample_size=32)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return vae.eval()


def tiny_causal_vae(seed: int = 0, **overrides) -> CausalVideoVAE:
    torch.manual_seed(seed)
    return CausalVideoVAE.from_config(tiny_config(**overrides)).eval()


@pytest.fixture(scope="session")
def cli():
    """The `kinema` root command with every installed plugin's commands."""
    from kinema.core.cli import build_cli

    return build_cli()


@pytest.fixture(scope="session")
def vae_dir(tmp_path_factory):
    """A saved tiny CausalVideoVAE folder."""
    folder = tmp_path_factory.mktemp("vae") / "tiny"
    tiny_causal_vae().save_pretrained(folder)
    return folder
