"""kinema-train's plugin: the `kinema train` and `kinema train-export` commands."""

from __future__ import annotations

from kinema.core import hookimpl


@hookimpl
def register_commands(cli):
    from .cli import export_command, train_command

    cli.add_command(train_command)
    cli.add_command(export_command)
