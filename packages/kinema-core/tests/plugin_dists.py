"""Write installed-looking distributions (dist-info + module) into a folder for plugin tests.

importlib.metadata discovers them exactly as it discovers pip-installed packages once
the folder is on sys.path, so the real entry-point loading path is exercised.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_distribution(root: Path, dist: str, module: str, source: str, version: str = "0.1.0") -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[kinema]\n{module} = {module}\n")
