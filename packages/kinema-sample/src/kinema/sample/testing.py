"""Tiny random pipelines for tests, demos and trying the tools. Their output is noise.

    from kinema.sample.testing import make_tiny_pipeline
    pipe = make_tiny_pipeline("tiny-pipe")          # also writes the folder
    python -m kinema.sample.testing tiny-pipe          # same, from the shell
"""

from __future__ import annotations

import sys

import torch

from .pipeline import KinemaVideoPipeline

TINY_DEFAULTS = {"num_frames": 4, "height": 32, "width": 32, "fps": 8, "guidance_scale": 4.0,
                 "num_inference_steps": 10}


def tiny_stdit2(caption_channels: int = 32, model_max_length: int = 16, in_channels: int = 4, seed: int = 0):
    from kinema.dit.stdit2 import STDiT2

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = STDiT2(input_sq_size=32, in_channels=in_channels, patch_size=(1, 2, 2), hidden_size=48, depth=2,
                       num_heads=4, caption_channels=caption_channels, model_max_length=model_max_length,
                       qk_norm=True)
        randomise_zero_layers(model)
    return model.eval()


def randomise_zero_layers(model: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Zero-initialised layers (output, cross-attention and temporal projections) get random weights, so a
    random model's prediction depends on its prompt and frames (and comparisons between runs are not trivial)."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                torch.nn.init.normal_(param, std=std)
    return model


def tiny_vae(kind: str = "framewise", seed: int = 0):
    """A 4x spatially compressing VAE: frame-wise SD layout, or the causal video VAE (also 4x in time)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "framewise":
            from kinema.vae.framewise import FramewiseSDVAE

            kl = {"down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
                  "block_out_channels": [8, 8, 16], "layers_per_block": 1, "latent_channels": 4,
                  "norm_num_groups": 4, "sample_size": 32}
            return FramewiseSDVAE(autoencoder_kl=kl).eval()
        if kind == "causal":
            from kinema.vae.causal_vae import CausalVideoVAE, tiny_config

            return CausalVideoVAE(**tiny_config(levels=3)).eval()
    raise ValueError(f"unknown tiny VAE kind {kind!r}; use 'framewise' or 'causal'")


def make_tiny_pipeline(path=None, scheduler: str = "iddpm", vae: str = "framewise", seed: int = 0,
                       model_max_length: int = 16) -> KinemaVideoPipeline:
    """A random STDiT2 + tiny VAE + tiny byte-level T5; saved to ``path`` when given."""
    from .schedulers import sampler_by_name
    from .text_encoders import tiny_t5_parts

    text_encoder, tokenizer = tiny_t5_parts(hidden_size=32, seed=seed)
    sampler, prediction_type = sampler_by_name(scheduler)
    pipe = KinemaVideoPipeline(
        transformer=tiny_stdit2(caption_channels=32, model_max_length=model_max_length, seed=seed),
        vae=tiny_vae(vae, seed=seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=sampler,
        defaults=dict(TINY_DEFAULTS, num_frames=5 if vae == "causal" else 4),
        prediction_type=prediction_type,
        random_init=True,
    )
    if path is not None:
        pipe.save_pretrained(path)
    return pipe


if __name__ == "__main__":  # pragma: no cover - exercised through the CLI tests
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kinema.sample.testing OUTPUT_DIR")
    make_tiny_pipeline(sys.argv[1])
    print(f"wrote a tiny random pipeline to {sys.argv[1]} (it generates noise; for testing the tools only)")
