import json
import subprocess
import sys

from plugin_dists import write_distribution

COMMANDS = """
import click
from osp.core import OspError, hookimpl

@click.command("fail")
def fail():
    raise OspError("the input is wrong; fix it like this")

@click.command("crash")
def crash():
    raise ZeroDivisionError("oops")

@hookimpl
def register_commands(cli):
    cli.add_command(fail)
    cli.add_command(crash)
"""


def run_osp(args, plugin_dir=None, env_extra=None):
    import os

    env = dict(os.environ)
    if plugin_dir is not None:
        env["PYTHONPATH"] = str(plugin_dir) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    code = "from osp.core.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_plugins_lists_distributions_versions_and_hooks(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS, version="1.2.3")
    result = run_osp(["plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["distribution"]: r for r in json.loads(result.stdout)["plugins"]}
    assert rows["cmd-plugin"]["version"] == "1.2.3"
    assert rows["cmd-plugin"]["hooks"] == ["register_commands"]
    assert "register_commands" in rows["osp-core"]["hooks"]


def test_user_errors_are_messages_not_tracebacks(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS)
    result = run_osp(["fail"], tmp_path)
    assert result.returncode == 1
    assert "the input is wrong; fix it like this" in result.stderr
    assert "Traceback" not in result.stderr


def test_unexpected_errors_hide_the_traceback_unless_debugging(tmp_path):
    write_distribution(tmp_path, "cmd-plugin", "cmd_plugin", COMMANDS)
    result = run_osp(["crash"], tmp_path)
    assert result.returncode == 1 and "ZeroDivisionError: oops" in result.stderr
    assert "Traceback" not in result.stderr and "OSP_DEBUG=1" in result.stderr
    debug = run_osp(["crash"], tmp_path, {"OSP_DEBUG": "1"})
    assert "Traceback" in debug.stderr


def test_doctor_reports_torch_and_dependencies():
    result = run_osp(["doctor"])
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "CPU build" in result.stdout or "CUDA" in result.stdout
    assert "ffmpeg" in result.stdout
