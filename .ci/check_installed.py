"""Fail unless the environment holds exactly the named kinema distributions, all importable, none of the
distributions named after --forbid, and at most one OpenCV distribution (they overwrite the same cv2).

    python .ci/check_installed.py kinema-core kinema-dit [--forbid pandas scenedetect ...]
"""

import importlib
import sys
from importlib import metadata

OPENCV = {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"}

args = sys.argv[1:]
forbidden = set(args[args.index("--forbid") + 1:]) if "--forbid" in args else set()
expected = set(args[: args.index("--forbid")] if "--forbid" in args else args)

installed = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
problems = []
ours = {name for name in installed if name.startswith("kinema-")}
if ours != expected:
    problems.append(f"kinema distributions installed: {sorted(ours)}; expected exactly {sorted(expected)}")
if installed & forbidden:
    problems.append(f"installed but must not be: {sorted(installed & forbidden)}")
if len(installed & OPENCV) > 1:
    problems.append(f"more than one OpenCV distribution: {sorted(installed & OPENCV)}")
if problems:
    sys.exit("; ".join(problems))
for name in sorted(expected):
    importlib.import_module(name.replace("-", "."))
print(f"installed and importable: {', '.join(sorted(expected))}; {len(installed)} distributions in all")
