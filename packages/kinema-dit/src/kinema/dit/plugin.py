"""kinema-dit's plugin: its attention backends, models and the `kinema dit` commands, registered by name.

Everything is registered as ``Lazy("module:attribute")``: discovery imports no torch; a model's module loads
when the model is looked up.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl

ATTENTION_BACKENDS = {
    "sdpa": "kinema.dit.attention:SDPA",
    "math": "kinema.dit.attention:MATH",
    "flash_attn": "kinema.dit.attention:FLASH_ATTN",
    "xformers": "kinema.dit.attention:XFORMERS",
}

# registry name -> factory(**config) -> model
MODELS = {
    "STDiT-XL/2": "kinema.dit.stdit:STDiT_XL_2",
    "STDiT2-XL/2": "kinema.dit.stdit2:STDiT2_XL_2",
    "DiT-XL/2": "kinema.dit.dit:DiT_XL_2",
    "PixArt-XL/2": "kinema.dit.pixart:PixArt_XL_2",
    "LatteT2V-XL/122": "kinema.dit.latte:LatteT2V_XL_122",
}


@hookimpl
def register_attention_backends(register):
    for name, target in ATTENTION_BACKENDS.items():
        register(name, Lazy(target))


@hookimpl
def register_models(register):
    for name, target in MODELS.items():
        register(name, Lazy(target))


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("dit", "kinema.dit.convert.cli:dit", "Diffusion transformer tools (kinema-dit).")
