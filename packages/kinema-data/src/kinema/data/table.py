"""The metadata table: one row per video or image, Open-Sora's columns, CSV or Parquet on disk.

Every stage reads a table and writes a table; writes are atomic (temporary file, then rename),
so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from kinema.core import KinemaError

# Open-Sora 1.1's columns (tools/datasets/datautil.py) and what fills them.
COLUMNS: dict[str, str] = {
    "path": "video or image file",
    "text": "caption",
    "num_frames": "frame count (kinema data info)",
    "height": "frame height in pixels",
    "width": "frame width in pixels",
    "aspect_ratio": "height / width",
    "fps": "frames per second",
    "resolution": "height * width",
    "text_len": "caption length in tokens",
    "timestamp": "scene list [(start, end), ...] as timecodes (scene detection)",
    "frame_start": "first frame of a clip in its source (scene cut)",
    "frame_end": "end frame (exclusive) of a clip in its source (scene cut)",
    "source": "the video a clip was cut from",
    "aes": "aesthetic score, 1-10 (CLIP + MLP head)",
    "flow": "mean optical-flow magnitude in pixels",
    "ocr": "fraction of the frame covered by text boxes",
    "blur": "sharpness: variance of the Laplacian (low = blurry)",
    "match": "caption-video match, 100 * cosine of CLIP embeddings",
    "cmotion": "camera motion label",
}

# The columns a training table keeps (upstream --train-column).
TRAIN_COLUMNS = ["path", "text", "num_frames", "fps", "height", "width", "aspect_ratio", "resolution", "text_len"]

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m2ts", ".webp", ".gif"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
TABLE_FORMATS = {".csv", ".parquet"}


def _check_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise KinemaError(f"table {str(path)!r}: unknown format {suffix!r}; name it *.csv or *.parquet")
    return suffix


def read_table(path: str | os.PathLike, require: tuple[str, ...] = ("path",)) -> pd.DataFrame:
    """A CSV or Parquet table; ``require`` names columns that must exist."""
    path = Path(path)
    suffix = _check_format(path)
    if not path.is_file():
        raise KinemaError(f"table {str(path)!r} does not exist; create one with `kinema data convert "
            "FOLDER -o TABLE.csv`")
    try:
        table = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise KinemaError(f"cannot read table {str(path)!r}: {type(exc).__name__}: {exc}") from None
    missing = [c for c in require if c not in table.columns]
    if missing:
        raise KinemaError(f"table {str(path)!r} lacks column(s) {', '.join(missing)}; "
                          f"it has {', '.join(table.columns)}")
    return table


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically: readers see the old file or the complete new one, never a partial one."""
    path = Path(path)
    suffix = _check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def folder_to_table(folder: str | os.PathLike, images: bool = False) -> pd.DataFrame:
    """Walk a folder (sorted, recursive) into a table with a ``path`` column of absolute paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KinemaError(f"{str(folder)!r} is not a folder")
    wanted = VIDEO_EXTENSIONS | (IMAGE_EXTENSIONS if images else set())
    paths = sorted(str(p.resolve()) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    return pd.DataFrame({"path": paths})


# ----------------------------------------------------------------------------- shards of a table


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> (i, N), 0 <= i < N."""
    if spec is None:
        return None
    try:
        index, count = (int(x) for x in spec.split("/"))
    except ValueError:
        raise KinemaError(f"--shard {spec!r}: write it as i/N, e.g. 0/4 for the first of four shards") from None
    if count < 1 or not 0 <= index < count:
        raise KinemaError(f"--shard {spec!r}: need 0 <= i < N")
    return index, count


def shard_table(table: pd.DataFrame, index: int, count: int) -> pd.DataFrame:
    """Contiguous block ``index`` of ``count``: concatenating the blocks in order restores the table."""
    n = len(table)
    return table.iloc[index * n // count : (index + 1) * n // count]


def shard_suffix(index: int, count: int) -> str:
    width = len(str(count - 1))
    return f"part{index:0{width}d}of{count}"


def merge_tables(tables: list[pd.DataFrame], join: bool = False) -> pd.DataFrame:
    """Concatenate row-wise (shard parts, several sources), or with ``join`` combine columns on ``path``."""
    if not tables:
        raise KinemaError("merge needs at least one table")
    if not join:
        return pd.concat(tables, ignore_index=True)
    merged = tables[0]
    for other in tables[1:]:
        new = [c for c in other.columns if c == "path" or c not in merged.columns]
        merged = merged.merge(other[new], on="path", how="left")
    return merged
