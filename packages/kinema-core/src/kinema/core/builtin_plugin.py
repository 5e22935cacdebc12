"""kinema-core's own plugin: the `plugins` and `doctor` commands."""

from __future__ import annotations

import json

import click

from .hookspecs import hookimpl


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins: name, distribution, version and hooks."""
    from .plugins import get_plugins

    plugins = get_plugins()
    rows = [vars(info) for info in plugins.infos.values()]
    failures = [vars(f) for f in plugins.failures]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    for row in sorted(rows, key=lambda r: (r["distribution"], r["name"])):
        click.echo(f"{row['name']:<12} {row['distribution']} {row['version']}")
        click.echo(f"             hooks: {', '.join(row['hooks']) or '(none)'}")
    for f in failures:
        click.echo(f"{f['name']:<12} {f['distribution']} {f['version']}  FAILED: {f['error']}")


@click.command("doctor")
def doctor_command() -> None:
    """Report the torch build, devices, attention kernels and optional dependencies."""
    from .doctor import run_checks

    for check in run_checks():
        mark = "ok " if check.ok else "-- "
        click.echo(f"{mark} {check.name:<22} {check.detail}")


@hookimpl
def register_commands(cli):
    # lazily, like every kinema package (this module is light, but the registered help must match the command's)
    cli.add_lazy_command("plugins", "kinema.core.builtin_plugin:plugins_command",
                         "List installed plugins: name, distribution, version and hooks.")
    cli.add_lazy_command("doctor", "kinema.core.builtin_plugin:doctor_command",
                         "Report the torch build, devices, attention kernels and optional dependencies.")
