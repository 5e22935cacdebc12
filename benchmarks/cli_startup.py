"""How fast the `kinema` command answers: `kinema --help` against `python -c "import torch"`, in the same run.

    python benchmarks/cli_startup.py [--repeats 5]

Each command runs as a fresh process; wall time is measured around it and CPU time (user + system) from the
children's resource usage. The medians are printed with their ratio; the goal is `--help` in under half the
time torch takes to import.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "kinema --help": [sys.executable, "-m", "kinema.core.cli", "--help"],
    "kinema plugins": [sys.executable, "-m", "kinema.core.cli", "plugins"],
    "import torch": [sys.executable, "-c", "import torch"],
}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str]) -> tuple[float, float]:
    cpu0, wall0 = children_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - wall0, children_cpu() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("kinema") is None:
        print("note: no `kinema` script on PATH; timing `python -m kinema.core.cli` instead")
    for argv in COMMANDS.values():  # warm the file cache once
        measure(argv)
    results = {}
    for name, argv in COMMANDS.items():
        runs = [measure(argv) for _ in range(args.repeats)]
        results[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    print(f"{'command':<16} {'wall s':>8} {'cpu s':>8}   (median of {args.repeats})")
    for name, (wall, cpu) in results.items():
        print(f"{name:<16} {wall:8.3f} {cpu:8.3f}")
    help_wall, help_cpu = results["kinema --help"]
    torch_wall, torch_cpu = results["import torch"]
    print(f"ratio kinema --help / import torch: wall {help_wall / torch_wall:.2f}, cpu {help_cpu / torch_cpu:.2f} "
          f"(goal: under 0.5)")


if __name__ == "__main__":
    main()
