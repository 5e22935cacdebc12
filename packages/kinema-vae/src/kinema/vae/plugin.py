"""kinema-vae's plugin: the two video VAEs and the `kinema vae` commands, registered like any third party."""

from __future__ import annotations

from kinema.core import hookimpl


@hookimpl
def register_vaes(register):
    from .causal_vae import CausalVideoVAE
    from .framewise import FramewiseSDVAE

    register("causal-video-vae", CausalVideoVAE, compression="4x8x8", source="Open-Sora-Plan 1.0 CausalVAEModel")
    register("sd-vae-framewise", FramewiseSDVAE, compression="1x8x8", source="Open-Sora 1.0/1.1 VideoAutoencoderKL")


@hookimpl
def register_commands(cli):
    from .cli import vae_group

    cli.add_command(vae_group)
