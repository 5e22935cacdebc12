"""One session per package: its own fresh venv, the package installed by its README's install command.

Each session proves what a user of that package gets: the README command works, it brings exactly the
package's kinema closure (and for kinema-sample none of the curation stack), `kinema --help` lists its commands
and discovery stays import-light (kinema-core's test_startup.py runs in every session), then its tests run.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
WHEELHOUSE = ROOT / "dist" / "wheelhouse"  # filled by scripts/install_package.py
OURS = ["kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"]
# package -> its kinema dependencies (what a fresh install of it must bring, and nothing more)
CLOSURE = {
    "kinema-core": {"kinema-core"},
    "kinema-vae": {"kinema-core", "kinema-vae"},
    "kinema-dit": {"kinema-core", "kinema-dit"},
    "kinema-data": {"kinema-core", "kinema-data"},
    "kinema-sample": {"kinema-core", "kinema-vae", "kinema-dit", "kinema-sample"},
    "kinema-train": {"kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"},
}
# distributions a package's install must not bring (sampling does not need the curation stack)
FORBIDDEN = {
    "kinema-sample": ["pandas", "pyarrow", "scenedetect", "pytesseract", "webdataset", "opencv-python"],
}

# optional extras a package's tests exercise besides `test`
EXTRAS = {"kinema-sample": "test,demo"}

nox.options.sessions = ["lint", *[p.removeprefix("kinema-") for p in OURS]]
nox.options.default_venv_backend = "venv"


def readme_install_command(package: str) -> list[str]:
    """The install line of the package's README (the one a user copies)."""
    text = (ROOT / "packages" / package / "README.md").read_text(encoding="utf-8")
    line = re.search(rf"^python scripts/install_package\.py {package}\s*$", text, re.M)
    if line is None:
        raise RuntimeError(f"packages/{package}/README.md has no line 'python scripts/install_package.py {package}'")
    return shlex.split(line.group(0))


def package_session(package: str):
    def run(session: nox.Session) -> None:
        session.install("-c", CONSTRAINTS, "pip>=23")
        if package == "kinema-dit":
            # a distribution that owns the old `osp` import path must survive our install (see the README's
            # migration note): installed first, it stays installed and importable next to kinema.dit
            standin = session.run("python", ".ci/standin_simphony.py", session.create_tmp(), silent=True).strip()
            session.install(standin)
        session.run(*readme_install_command(package))
        session.run("python", "-m", "pip", "list")
        forbidden = FORBIDDEN.get(package, [])
        session.run("python", ".ci/check_installed.py", *sorted(CLOSURE[package]),
                    *(["--forbid", *forbidden] if forbidden else []))
        if package == "kinema-dit":
            session.run("python", "-c", "import osp.core, kinema.dit; assert osp.core.STANDIN == 'simphony'; "
                        "print('osp-core stand-in and kinema.dit both import')")
        extras = EXTRAS.get(package, "test")
        session.install("-c", CONSTRAINTS, "--find-links", str(WHEELHOUSE), f"{package}[{extras}]")
        if package != "kinema-core":  # discovery and --help, checked with this package's closure (a run of its
            # own: each tests folder has its own conftest module)
            session.run("python", "-m", "pytest", str(ROOT / "packages" / "kinema-core" / "tests" / "test_startup.py"),
                        "-q")
        session.run("python", "-m", "pytest", str(ROOT / "packages" / package / "tests"), "-q", *session.posargs)

    run.__doc__ = f"Install {package} alone (its README command) into a fresh venv and run its tests."
    return run


for _package in OURS:
    nox.session(name=_package.removeprefix("kinema-"))(package_session(_package))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the benchmarks, the scripts and this file."""
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", "packages", "benchmarks", "scripts", "noxfile.py", ".ci")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run every benchmark script (prints figures; takes minutes)."""
    session.run("python", "scripts/install_package.py", *[f"{p}[test]" for p in OURS])
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), *session.posargs)
