"""Tiny versions of the upstream systems' published files, in their upstream layouts (for the tests)."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

T5_WIDTH = 32


def write_t5(folder: Path) -> None:
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(vocab_size=384, d_model=T5_WIDTH, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(folder)
    ByT5Tokenizer().save_pretrained(folder)


def write_sd_vae(folder: Path) -> None:
    """stabilityai/sd-vae-ft-ema's layout: a diffusers AutoencoderKL folder, 8x spatial compression."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                  block_out_channels=[8, 8, 8, 8], layers_per_block=1, latent_channels=4, norm_num_groups=4,
                  sample_size=32).save_pretrained(folder)


def write_causal_vae_release(folder: Path) -> None:
    """Open-Sora-Plan-v1.0.0/vae: config.json with the release fields + weights holding the training loss keys."""
    from kinema.vae import CausalVideoVAE, tiny_config

    torch.manual_seed(0)
    config = tiny_config(levels=4)  # the release's 4x8x8 level structure, 8 channels
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "CausalVAEModel", **config}))
    state = {k: v.contiguous() for k, v in CausalVideoVAE.from_config(config).state_dict().items()}
    state.update({"loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4)})
    save_file(state, folder / "diffusion_pytorch_model.safetensors")
