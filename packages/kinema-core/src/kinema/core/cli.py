"""The ``kinema`` command-line root. Subcommands come from plugins' ``register_commands`` hook.

Plugins register their commands lazily (``cli.add_lazy_command(name, "module:attribute", help)``): the root
lists names and one-line helps without importing the commands' modules, so ``kinema --help`` and a typo answer
at once; a command's module loads when that command runs.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from .errors import KinemaError, failure_message
from .lazy import Lazy
from .plugins import PLUGIN_FAILURES, get_plugins


class KinemaGroup(click.Group):
    """Loads lazily registered commands when chosen; turns user-facing errors into one-line messages."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, tuple[Lazy, str]] = {}  # name -> (where the command is, one-line help)

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        """Register ``name`` as the click command at ``target`` ("module:attribute"), imported when run."""
        self.lazy_commands[name] = (Lazy(target), short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            target = self.lazy_commands[cmd_name][0]
            try:
                command = target.load()
            except ImportError as exc:
                raise click.ClickException(
                    f"the {cmd_name!r} command cannot load ({exc}); install what it needs") from None
            if not isinstance(command, click.Command):
                raise click.ClickException(f"the {cmd_name!r} command's target {target.target} is not a click command")
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # one-line helps of lazy commands come from their registration, so listing them imports nothing
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                if not self.commands[name].hidden:
                    rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=self.lazy_commands[name][1]).get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KinemaError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            if os.environ.get("KINEMA_DEBUG"):
                raise
            raise click.ClickException(failure_message(exc, ctx.invoked_subcommand or "")) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kinema-core")
    except PackageNotFoundError:
        return "unknown"


@click.group(cls=KinemaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="kinema")
def cli() -> None:
    """kinema: open, modular video generation (STDiT, STDiT2, Latte, causal video VAE)."""


def build_cli() -> click.Group:
    plugins = get_plugins()
    for impl in plugins.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except PLUGIN_FAILURES as exc:
            plugins.record_failure(impl.plugin_name, plugins.distribution_of(impl.plugin_name), "", exc)
    return cli


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    warnings.formatwarning = _one_line_warning  # CLI users see the message, not our source lines
    build_cli()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="kinema")


if __name__ == "__main__":  # pragma: no cover
    main()
