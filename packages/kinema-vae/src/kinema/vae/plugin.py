"""kinema-vae's plugin: the two video VAEs and the `kinema vae` commands, registered like any third party.

Registered by name (``Lazy``): discovery imports neither torch nor diffusers.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl


@hookimpl
def register_vaes(register):
    register("causal-video-vae", Lazy("kinema.vae.causal_vae:CausalVideoVAE"),
             compression="4x8x8", source="Open-Sora-Plan 1.0 CausalVAEModel")
    register("sd-vae-framewise", Lazy("kinema.vae.framewise:FramewiseSDVAE"),
             compression="1x8x8", source="Open-Sora 1.0/1.1 VideoAutoencoderKL")


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("vae", "kinema.vae.cli:vae_group",
                         "Video VAEs: inflate an SD VAE, reconstruct and evaluate clips, train.")
