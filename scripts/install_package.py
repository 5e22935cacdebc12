"""Install one kinema package from this checkout, with exactly the kinema packages it depends on.

    python scripts/install_package.py kinema-dit            # into the active environment
    python scripts/install_package.py kinema-sample[demo]   # with extras

pip resolves our packages' dependencies on each other by name (``kinema-core~=0.1.0``), and before they are on
an index it can only find them as wheels. So this builds a wheel of every package in ``packages/`` into
``dist/wheelhouse/`` and lets pip pick what the requested package needs from there, with ``constraints.txt``
(the CPU build of torch). Once the packages are published, ``pip install kinema-dit`` does the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"
WHEELHOUSE = ROOT / "dist" / "wheelhouse"
CONSTRAINTS = ROOT / "constraints.txt"
REQUIREMENT = re.compile(r"^(kinema-[a-z]+)(\[[a-z0-9_,-]+\])?$")


def ours() -> list[str]:
    return sorted(p.name for p in PACKAGES.iterdir() if (p / "pyproject.toml").is_file())


def build_wheelhouse() -> Path:
    """Wheels of every kinema package (no dependencies) in dist/wheelhouse, replacing older builds."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for old in WHEELHOUSE.glob("kinema_*.whl"):
        old.unlink()
    for name in ours():
        # setuptools reuses build/lib between builds and would pack modules since deleted or renamed in src/
        shutil.rmtree(PACKAGES / name / "build", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(WHEELHOUSE),
                    *[str(PACKAGES / name) for name in ours()]], check=True)
    return WHEELHOUSE


def main(argv: list[str]) -> int:
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0 if argv else 2
    for requirement in argv:
        match = REQUIREMENT.match(requirement)
        if not match or match.group(1) not in ours():
            print(f"install_package: {requirement!r} is not one of this checkout's packages "
                  f"({', '.join(ours())}), optionally with [extras]", file=sys.stderr)
            return 2
    build_wheelhouse()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-c", str(CONSTRAINTS),
                           "--find-links", str(WHEELHOUSE), *argv])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
