"""A JSON file next to each sampled video with everything needed to make it again.

    sample.mp4 -> sample.json          kinema sample --from-sidecar sample.json -o again.mp4

The noise comes from a CPU generator seeded per batch, so the same sidecar, model folder, dtype and device
give the same frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from kinema.core import KinemaError

SIDECAR_FORMAT = "kinema-sample/1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
CHUNK = 1 << 20
# the keys `kinema sample --from-sidecar` needs; the rest (model hash, version, device) is for people to compare
REQUIRED = ("batch_prompts", "batch_index", "seed", "steps", "guidance_scale", "num_frames", "height", "width",
            "fps", "dtype", "model")


def sidecar_path(video: str | os.PathLike) -> Path:
    return Path(video).with_suffix(".json")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kinema-sample")
    except PackageNotFoundError:
        return "unknown"


def model_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over the folder's JSON configs (model_index.json and each component's, in full) and, for every
    weight file, its relative path, size and first and last MB: reads a few MB however large the model, and
    tells retrained or re-exported weights apart (a change confined to the middle of a file goes unseen)."""
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".json" or p.suffix in WEIGHT_SUFFIXES))
    for path in files:
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with open(path, "rb") as f:
            if path.suffix == ".json":
                digest.update(f.read())
                continue
            digest.update(f.read(CHUNK))
            if size > CHUNK:
                f.seek(max(CHUNK, size - CHUNK))
                digest.update(f.read(CHUNK))
    return "sha256:" + digest.hexdigest()


def write_sidecar(video: str | os.PathLike, record: dict) -> Path:
    """Atomic: a temporary file in the same folder, renamed over the target."""
    path = sidecar_path(video)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"format": SIDECAR_FORMAT, **record}, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_sidecar(path: str | os.PathLike) -> dict:
    """A sidecar written by `kinema sample` for one video, checked, or a one-line KinemaError."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KinemaError(f"--from-sidecar {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KinemaError(f"--from-sidecar {str(path)!r} is not a JSON sidecar ({' '.join(str(exc).split())}); "
                          "give the .json written next to a video by `kinema sample`") from None
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        raise KinemaError(f"--from-sidecar {str(path)!r} is not a {SIDECAR_FORMAT} sidecar; give the .json written "
                          "next to a video by `kinema sample`")
    if "grid" in record:
        raise KinemaError(f"--from-sidecar {str(path)!r} describes a grid of {len(record['grid'])} videos; give one "
                          f"of their sidecars ({', '.join(record['grid'])})")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise KinemaError(f"--from-sidecar {str(path)!r} lacks {', '.join(missing)}; it was not written by this "
                          "version of `kinema sample`")
    prompts, index = record["batch_prompts"], record["batch_index"]
    if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)
            and isinstance(index, int) and 0 <= index < len(prompts)):
        raise KinemaError(f"--from-sidecar {str(path)!r}: batch_prompts must be a list of prompts and batch_index "
                          "a position in it")
    return record
