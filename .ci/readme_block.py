"""Print fenced shell block N (1 = main job, 2 = tests) of README.md's ## Quickstart."""

import re
import sys
from pathlib import Path

text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
section = re.search(r"^## Quickstart\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
blocks = re.findall(r"^```(?:bash|sh|shell|console)?\s*\n(.*?)^```", section.group(1), re.M | re.S) if section else []
if len(blocks) < 2:
    sys.exit("README.md needs a ## Quickstart section with two fenced shell blocks")
print(blocks[int(sys.argv[1]) - 1])
