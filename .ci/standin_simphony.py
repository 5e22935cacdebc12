"""Build a stand-in for SimPhoNy's `osp-core` from PyPI: a wheel holding a *regular* `osp/__init__.py` and an
`osp/core/` package, the layout that owned the import path this project used before its rename. Nothing is
downloaded. Usage: `python .ci/standin_simphony.py OUT_DIR` prints the wheel's path.
"""

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

NAME, VERSION = "osp_core", "3.9.0"
FILES = {
    "osp/__init__.py": '"""Stand-in for SimPhoNy\'s osp package."""\n',
    "osp/core/__init__.py": 'STANDIN = "simphony"\n',
    f"{NAME}-{VERSION}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: osp-core\nVersion: {VERSION}\n",
    f"{NAME}-{VERSION}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: standin\nRoot-Is-Purelib: true\n"
                                         "Tag: py3-none-any\n",
}


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{NAME}-{VERSION}-py3-none-any.whl"
    record = f"{NAME}-{VERSION}.dist-info/RECORD"
    with zipfile.ZipFile(wheel, "w") as zf:
        lines = []
        for path, text in FILES.items():
            zf.writestr(path, text)
            lines.append(record_line(path, text.encode()))
        zf.writestr(record, "\n".join([*lines, f"{record},,"]) + "\n")
    return wheel


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
