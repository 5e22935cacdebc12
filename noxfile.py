"""One session per package: its own venv, only that package (and what it depends on) installed.

Our packages are resolved from a wheelhouse built from this checkout, so each session
also proves the dependency direction: installing kinema-dit brings kinema-core and nothing else of ours.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
WHEELHOUSE = ROOT / ".nox" / "_wheelhouse"
OURS = ["kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"]
# package -> its kinema dependencies (what a fresh install of it must bring, and nothing more)
CLOSURE = {
    "kinema-core": {"kinema-core"},
    "kinema-vae": {"kinema-core", "kinema-vae"},
    "kinema-dit": {"kinema-core", "kinema-dit"},
    "kinema-data": {"kinema-core", "kinema-data"},
    "kinema-sample": {"kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample"},
    "kinema-train": {"kinema-core", "kinema-vae", "kinema-dit", "kinema-data", "kinema-sample", "kinema-train"},
}

# optional extras a package's tests exercise besides `test`
EXTRAS = {"kinema-sample": "test,demo"}

nox.options.sessions = ["lint", *[p.removeprefix("kinema-") for p in OURS]]
nox.options.default_venv_backend = "venv"


def build_wheelhouse(session: nox.Session) -> None:
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for old in WHEELHOUSE.glob("*.whl"):
        old.unlink()
    session.run(
        "python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(WHEELHOUSE),
        *[str(ROOT / "packages" / p) for p in OURS],
    )


def package_session(package: str, extra_system: tuple[str, ...] = ()):
    def run(session: nox.Session) -> None:
        build_wheelhouse(session)
        extras = EXTRAS.get(package, "test")
        session.install("-c", CONSTRAINTS, "--find-links", str(WHEELHOUSE), f"{ROOT / 'packages' / package}[{extras}]")
        session.run("python", str(ROOT / ".ci" / "check_installed.py"), *sorted(CLOSURE[package]))
        session.run("python", "-m", "pytest", str(ROOT / "packages" / package / "tests"), "-q", *session.posargs)

    run.__doc__ = f"Install {package} alone into a fresh venv and run its tests."
    return run


for _package in OURS:
    nox.session(name=_package.removeprefix("kinema-"))(package_session(_package))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the benchmarks and this file."""
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", "packages", "benchmarks", "noxfile.py", ".ci")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run every benchmark script (prints figures; takes minutes)."""
    session.install("-c", CONSTRAINTS, *[f"{ROOT / 'packages' / p}[test]" for p in OURS])
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), *session.posargs)
