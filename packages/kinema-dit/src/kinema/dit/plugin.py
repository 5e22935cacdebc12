"""kinema-dit's plugin: registers its attention backends and models through the kinema hooks."""

from __future__ import annotations

from kinema.core import hookimpl


@hookimpl
def register_attention_backends(register):
    from .attention import BUILTIN_BACKENDS

    for backend in BUILTIN_BACKENDS:
        register(backend.name, backend, description=backend.description)


@hookimpl
def register_models(register):
    # Each model module lists its flavours as name -> factory(**config) -> model.
    from . import dit, latte, pixart, stdit, stdit2

    for module in (stdit, stdit2, dit, pixart, latte):
        for name, factory in module.FLAVOURS.items():
            register(name, factory, module=module.__name__)


@hookimpl
def register_commands(cli):
    from .convert.cli import dit

    cli.add_command(dit)
