"""Plugin discovery is import-light: `kinema --help`, `kinema plugins` and listing every registry's names import
no heavy library, yet every installed kinema package's commands and components are there and load when used.

Each nox session runs this file next to its own package's tests, so it checks every package's closure.
"""

import json
import os
import subprocess
import sys
import types
from importlib import metadata

import click
import pytest

from kinema.core import KINDS, get_registry
from kinema.core.cli import build_cli

HEAVY = ("torch", "diffusers", "transformers", "megatron", "pandas", "cv2")

# distribution -> the commands it adds to the root (what its README documents)
COMMANDS = {
    "kinema-core": {"plugins", "doctor"},
    "kinema-vae": {"vae"},
    "kinema-dit": {"dit"},
    "kinema-data": {"data"},
    "kinema-sample": {"sample", "eval", "demo"},
    "kinema-train": {"train", "train-export"},
}

DISCOVER = f"""
import json, sys
from kinema.core.cli import main
from kinema.core import KINDS, get_registry
for args in (["--help"], ["plugins"], ["no-such-command"]):
    try:
        main(args)
    except SystemExit:
        pass
names = {{kind: get_registry(kind).names() for kind in KINDS}}
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"heavy": heavy, "names": names}}))
"""


def installed_kinema() -> set[str]:
    return {d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].startswith("kinema-")}


def discover() -> dict:
    done = subprocess.run([sys.executable, "-c", DISCOVER], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_discovery_help_and_plugins_import_no_heavy_library():
    result = discover()
    assert result["heavy"] == []
    assert "dit" not in installed_kinema() or "STDiT2-XL/2" in result["names"]["model"]  # names were registered


def test_help_lists_the_commands_of_every_installed_package():
    done = subprocess.run([sys.executable, "-m", "kinema.core.cli", "--help"], capture_output=True, text=True,
                          timeout=120, check=True)
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    expected = set().union(*(COMMANDS[d] for d in installed_kinema()))
    assert expected <= listed


def test_lazy_commands_load_and_their_help_is_the_commands_own():
    cli = build_cli()
    ctx = click.Context(cli)
    expected = set().union(*(COMMANDS[d] for d in installed_kinema()))
    assert expected <= set(cli.lazy_commands), "kinema's packages register their commands lazily"
    for name, (_, short_help) in cli.lazy_commands.items():
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.get_short_help_str(200) == short_help, name


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lazy_components_load_to_objects_of_the_module_they_name(kind):
    for entry in get_registry(kind).entries():
        if not entry.distribution.startswith("kinema-"):
            continue
        module = entry.module
        obj = entry.obj
        assert obj is not None
        if isinstance(obj, (type, types.FunctionType)):  # pipeline folders trust classes by their module
            assert obj.__module__ == module, (kind, entry.name)


def test_a_lazy_command_that_cannot_import_is_a_one_line_error(plugin_path):
    from plugin_dists import write_distribution

    write_distribution(plugin_path, "needs-missing", "needs_missing", """
        from kinema.core import hookimpl

        @hookimpl
        def register_commands(cli):
            cli.add_lazy_command("needs-missing", "no_such_module_anywhere:command", "Needs a missing module.")
    """)
    done = subprocess.run([sys.executable, "-m", "kinema.core.cli", "needs-missing"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(plugin_path)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "'needs-missing' command cannot load" in done.stderr and "no_such_module_anywhere" in done.stderr
