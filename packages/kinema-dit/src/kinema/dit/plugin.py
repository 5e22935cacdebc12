"""kinema-dit's plugin: its attention backends, models and the `kinema dit` commands, registered by name.

Everything is registered as ``Lazy("module:attribute")``: discovery imports no torch; a model's module loads
when the model is looked up.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl

from .flavours import SIZES

ATTENTION_BACKENDS = {
    "sdpa": "kinema.dit.attention:SDPA",
    "math": "kinema.dit.attention:MATH",
    "flash_attn": "kinema.dit.attention:FLASH_ATTN",
    "xformers": "kinema.dit.attention:XFORMERS",
}

# model family -> (module, patch in the flavour names); each module's FLAVOURS holds the family in every size
FAMILIES = {
    "STDiT": ("kinema.dit.stdit", "2"),
    "STDiT2": ("kinema.dit.stdit2", "2"),
    "DiT": ("kinema.dit.dit", "2"),
    "PixArt": ("kinema.dit.pixart", "2"),
    "LatteT2V": ("kinema.dit.latte", "122"),
}

# registry name -> factory(**config) -> model: "STDiT-S/2" -> kinema.dit.stdit:FLAVOURS.S, ...
MODELS = {
    f"{family}-{size}/{patch}": f"{module}:FLAVOURS.{size}"
    for family, (module, patch) in FAMILIES.items()
    for size in SIZES
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
