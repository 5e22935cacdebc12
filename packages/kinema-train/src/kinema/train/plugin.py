"""kinema-train's plugin: the `kinema train` and `kinema train-export` commands (imported when run)."""

from __future__ import annotations

from kinema.core import hookimpl


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("train", "kinema.train.cli:train_command",
                         "Train a model from CONFIG (YAML), with key.sub=value overrides.")
    cli.add_lazy_command("train-export", "kinema.train.cli:export_command",
                         "Write a training CHECKPOINT (a step-* folder) as a pipeline folder that "
                         "`kinema sample --model` loads.")
