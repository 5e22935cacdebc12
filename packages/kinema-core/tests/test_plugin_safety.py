"""Plugins cannot be planted in the working directory, and a plugin that exits at import stops nothing."""

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from kinema.core import get_plugins, get_registry
from kinema.core.doctor import plugin_failure_checks
from kinema.core.plugins import found_via_working_directory
from plugin_dists import write_distribution

PLANTED = """
from pathlib import Path
Path(__file__).with_name("planted-code-ran").write_text("yes")
"""

EXITS = "import sys\nsys.exit(3)\n"

GOOD = """
from kinema.core import hookimpl

@hookimpl
def register_schedulers(register):
    register("toy-scheduler", "TOY")
"""


def _run(args, cwd, pythonpath=None):
    env = dict(os.environ)
    env.pop("PYTHONSAFEPATH", None)  # the default: `python -m` puts the working directory first on sys.path
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_a_distribution_in_the_working_directory_is_not_loaded_by_python_m(tmp_path):
    write_distribution(tmp_path, "planted-plugin", "planted_plugin", PLANTED)
    result = _run(["-m", "kinema.core.cli", "plugins", "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "planted-code-ran").exists()
    listed = json.loads(result.stdout)
    distributions = {r["distribution"] for r in listed["plugins"] + listed["failures"]}
    assert "planted-plugin" not in distributions and "kinema-core" in distributions


def test_the_same_distribution_installed_elsewhere_still_loads(tmp_path):
    installed, cwd = tmp_path / "installed", tmp_path / "cwd"
    installed.mkdir(), cwd.mkdir()
    write_distribution(installed, "planted-plugin", "planted_plugin", PLANTED)
    result = _run(["-m", "kinema.core.cli", "plugins", "--json"], cwd=cwd, pythonpath=installed)
    assert result.returncode == 0, result.stderr
    assert (installed / "planted-code-ran").exists()  # a deliberately installed plugin runs as before


class _Dist:
    def __init__(self, folder):
        self.folder = folder

    def locate_file(self, path):
        return self.folder / path


def test_only_the_working_directory_itself_is_distrusted_unless_it_is_a_site_packages(tmp_path):
    site_dir = tmp_path / ".venv" / "site-packages"
    assert found_via_working_directory(_Dist(tmp_path), tmp_path, {site_dir})
    assert not found_via_working_directory(_Dist(tmp_path), tmp_path, {tmp_path})  # cwd is a site-packages
    assert not found_via_working_directory(_Dist(site_dir), tmp_path, {site_dir})
    assert not found_via_working_directory(_Dist(tmp_path / "plugins"), tmp_path, {site_dir})  # put on PYTHONPATH
    assert not found_via_working_directory(_Dist(tmp_path.parent / "elsewhere"), tmp_path, {site_dir})


def test_installed_kinema_packages_load_from_a_project_folder_holding_the_venv(monkeypatch):
    own = metadata.distribution("kinema-core")
    monkeypatch.chdir(own.locate_file("").resolve().parent)  # e.g. .venv/lib/python3.x: site-packages below it
    from kinema.core import reset_plugins

    reset_plugins()
    try:
        assert "kinema-core" in {info.distribution for info in get_plugins().infos.values()}
    finally:
        reset_plugins()


def test_a_plugin_calling_sys_exit_at_import_is_reported_not_fatal(plugin_path):
    write_distribution(plugin_path, "exiting-plugin", "exiting_plugin", EXITS)
    write_distribution(plugin_path, "good-plugin", "good_plugin", GOOD)
    with pytest.warns(UserWarning, match="exiting-plugin"):
        assert "toy-scheduler" in get_registry("scheduler").names()
    failures = [f for f in get_plugins().failures if f.distribution == "exiting-plugin"]
    assert len(failures) == 1 and "sys.exit(3)" in failures[0].error
    doctor = [c for c in plugin_failure_checks() if "exiting-plugin" in c.detail]
    assert len(doctor) == 1 and not doctor[0].ok and "sys.exit(3)" in doctor[0].detail
    sys.modules.pop("exiting_plugin", None)


def test_help_and_plugins_work_when_a_plugin_exits_at_import_or_in_its_command_hook(tmp_path):
    write_distribution(tmp_path, "exiting-plugin", "exiting_plugin", EXITS)
    hook_exits = "from kinema.core import hookimpl\n\n@hookimpl\ndef register_commands(cli):\n    raise SystemExit(4)\n"
    write_distribution(tmp_path, "hook-exits-plugin", "hook_exits_plugin", hook_exits)
    code = "from kinema.core.cli import main; main()"
    helped = _run(["-c", code, "--help"], cwd=tmp_path.parent, pythonpath=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "doctor" in helped.stdout and "plugins" in helped.stdout
    listed = _run(["-c", code, "plugins"], cwd=tmp_path.parent, pythonpath=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "exiting-plugin" in listed.stdout and "sys.exit(3)" in listed.stdout
    assert "hook-exits-plugin" in listed.stdout and "sys.exit(4)" in listed.stdout
