"""`python -m kinema.train` (what `torchrun -m` runs) imports nothing it finds in the working directory."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tiny import tiny_config

CORE_TESTS = Path(__file__).resolve().parents[2] / "kinema-core" / "tests"

PLANTED = """
from pathlib import Path
Path(__file__).with_name("planted-code-ran").write_text("yes")
"""


def test_a_distribution_planted_in_the_working_directory_does_not_run(tmp_path):
    sys.path.insert(0, str(CORE_TESTS))
    try:
        from plugin_dists import write_distribution
    finally:
        sys.path.remove(str(CORE_TESTS))
    write_distribution(tmp_path, "planted-plugin", "planted_plugin", PLANTED)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path / "run").to_dict()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    # --check builds the model, text encoder and scheduler by name: every plugin is discovered and loaded
    result = subprocess.run([sys.executable, "-m", "kinema.train", "c.yaml", "--check"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "# check passed" in result.stdout
    assert not (tmp_path / "planted-code-ran").exists()
