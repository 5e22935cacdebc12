"""Fail unless exactly the named kinema distributions are installed and importable."""

import importlib
import sys
from importlib import metadata

expected = set(sys.argv[1:])
installed = {d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].startswith("kinema-")}
if installed != expected:
    sys.exit(f"kinema distributions installed: {sorted(installed)}; expected exactly {sorted(expected)}")
for name in sorted(expected):
    importlib.import_module(name.replace("-", "."))
print(f"installed and importable: {', '.join(sorted(expected))}")
