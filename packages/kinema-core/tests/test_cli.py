import json
import subprocess
import sys

from plugin_dists import write_distribution

COMMANDS = """
import click
from kinema.core import KinemaError, hookimpl

@click.command("fail")
def fail():
    raise KinemaError("the input is wrong; fix it like this")

@click.command("crash")
def crash():
    raise ZeroDivisionError("oops")

@hookimpl
def register_commands(cli):
    cli.add_command(fail)
    cli.add_command(crash)
"""


def run_kinema(args, plugin_dir=None, env_extra=None):
    import os

    env = dict(os.environ)
    if plugin_dir is not None:
        env["PYTHONPATH"] = str(plugin_dir) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    code = "from kinema.core.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_plugins_lists_distributions_versions_and_hooks(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS, version="1.2.3")
    result = run_kinema(["plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["distribution"]: r for r in json.loads(result.stdout)["plugins"]}
    assert rows["cmd-plugin"]["version"] == "1.2.3"
    assert rows["cmd-plugin"]["hooks"] == ["register_commands"]
    assert "register_commands" in rows["kinema-core"]["hooks"]


def test_user_errors_are_messages_not_tracebacks(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS)
    result = run_kinema(["fail"], tmp_path)
    assert result.returncode == 1
    assert "the input is wrong; fix it like this" in result.stderr
    assert "Traceback" not in result.stderr


def test_unexpected_errors_hide_the_traceback_unless_debugging(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS)
    result = run_kinema(["crash"], tmp_path)
    assert result.returncode == 1 and "Error: oops — an unexpected failure in `kinema crash`" in result.stderr
    assert "ZeroDivisionError" not in result.stderr
    assert "Traceback" not in result.stderr and "KINEMA_DEBUG=1" in result.stderr
    debug = run_kinema(["crash"], tmp_path, {"KINEMA_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_doctor_reports_torch_and_dependencies():
    result = run_kinema(["doctor"])
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "CPU build" in result.stdout or "CUDA" in result.stdout
    assert "ffmpeg" in result.stdout
