"""kinema-sample's plugin: schedulers, text encoders and the `kinema sample` command, through the kinema hooks."""

from __future__ import annotations

from kinema.core import hookimpl


def _summary(obj) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


@hookimpl
def register_schedulers(register):
    from .schedulers import SCHEDULERS

    for name, cls in SCHEDULERS.items():
        register(name, cls, description=_summary(cls))


@hookimpl
def register_text_encoders(register):
    from .text_encoders import TEXT_ENCODERS

    for name, factory in TEXT_ENCODERS.items():
        register(name, factory, description=_summary(factory))


@hookimpl
def register_commands(cli):
    from .adherence import eval_group
    from .cli import sample_command
    from .demo import demo_command

    cli.add_command(sample_command)
    cli.add_command(demo_command)
    cli.add_command(eval_group)
