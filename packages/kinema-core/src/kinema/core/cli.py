"""The ``kinema`` command-line root. Subcommands come from plugins' ``register_commands`` hook."""

from __future__ import annotations

import os
import sys
import warnings

import click

from .errors import KinemaError
from .plugins import get_plugins


class KinemaGroup(click.Group):
    """Turns user-facing errors into one-line messages instead of tracebacks."""

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
            traceback_hint = "run again with KINEMA_DEBUG=1 to see the traceback"
            raise click.ClickException(f"{type(exc).__name__}: {exc}\n({traceback_hint})") from None


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
        except Exception as exc:
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
