"""Row filters and caption edits over a metadata table (upstream datautil's operations).

Each function takes and returns a DataFrame; ``apply`` runs the ones the CLI asked for, in a fixed
order, and returns the name suffixes upstream appends to the output file (``_fmin16`` ...).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from kinema.core import KinemaError

from .table import TRAIN_COLUMNS

_URL = re.compile(r"https?://\S+|www\.\S+")
# Openings captioning LLMs put before the content (upstream --refine-llm-caption).
_LLM_OPENINGS = re.compile(
    r"^\s*(the (video|image) (shows|captures|features|depicts|presents|is)( that)?|in the (video|image),?)\s*",
    re.IGNORECASE,
)
CMOTION_SENTENCES = {
    "static": "The camera is static.",
    "dynamic": "The camera is moving.",
    "zoom in": "The camera is zooming in.",
    "zoom out": "The camera is zooming out.",
    "pan left": "The camera is panning left.",
    "pan right": "The camera is panning right.",
    "tilt up": "The camera is tilting up.",
    "tilt down": "The camera is tilting down.",
    "pan/tilt": "The camera is panning.",
}


def _need(table: pd.DataFrame, column: str, flag: str) -> pd.Series:
    if column not in table.columns:
        raise KinemaError(f"{flag} needs the column {column!r}, which the table lacks; run the stage "
            "that fills it first")
    return table[column]


def score_range(table: pd.DataFrame, column: str, lo: float | None = None, hi: float | None = None) -> pd.DataFrame:
    """Keep rows with lo <= column <= hi; NaN scores are dropped (as upstream does)."""
    values = _need(table, column, f"a {column} filter")
    keep = values.notna()
    if lo is not None:
        keep &= values >= lo
    if hi is not None:
        keep &= values <= hi
    return table[keep]


def drop_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Remove rows any stage recorded an error for (columns ``<stage>_error``)."""
    error_columns = [c for c in table.columns if c.endswith("_error")]
    if not error_columns:
        return table
    bad = table[error_columns].notna().any(axis=1)
    return table[~bad]


def existing_files(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["path"].map(os.path.exists)]


def remove_empty_caption(table: pd.DataFrame) -> pd.DataFrame:
    text = _need(table, "text", "--remove-empty-caption")
    return table[text.notna() & (text.astype(str).str.strip() != "")]


def remove_url(table: pd.DataFrame) -> pd.DataFrame:
    text = _need(table, "text", "--remove-url").fillna("").astype(str)
    return table[~text.str.contains(_URL)]


def remove_duplicates(table: pd.DataFrame, column: str) -> pd.DataFrame:
    return table.drop_duplicates(subset=[_need(table, column, f"--remove-{column}-duplication").name])


def refine_llm_caption(text: str) -> str:
    """Strip 'The video shows ...'-style openings and re-capitalise."""
    if not isinstance(text, str):
        return text
    stripped = _LLM_OPENINGS.sub("", text, count=1).strip()
    return stripped[:1].upper() + stripped[1:] if stripped else stripped


def clean_caption(text: str) -> str:
    """Light clean-up: drop URLs and HTML tags, collapse whitespace."""
    if not isinstance(text, str):
        return text
    text = _URL.sub("", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def merge_cmotion(table: pd.DataFrame) -> pd.DataFrame:
    """Append the camera-motion sentence to each caption ('unknown' adds nothing)."""
    _need(table, "cmotion", "--merge-cmotion")
    table = table.copy()
    sentences = table["cmotion"].map(lambda c: CMOTION_SENTENCES.get(c, ""))
    table["text"] = [(f"{t} {s}".strip() if s else t) for t, s in zip(table["text"].fillna(""), sentences)]
    return table


def relative_paths(table: pd.DataFrame, root: str) -> pd.DataFrame:
    table = table.copy()
    table["path"] = table["path"].map(lambda p: os.path.relpath(p, root))
    return table


def absolute_paths(table: pd.DataFrame, root: str) -> pd.DataFrame:
    table = table.copy()
    table["path"] = table["path"].map(lambda p: str((Path(root) / p).resolve()))
    return table


def apply(table: pd.DataFrame, **opts) -> tuple[pd.DataFrame, list[str]]:
    """Run the requested operations in upstream's order; returns (table, file-name suffixes)."""
    tags: list[str] = []
    if opts.get("abspath"):
        table, _ = absolute_paths(table, opts["abspath"]), tags.append("abs")
    if opts.get("relpath"):
        table, _ = relative_paths(table, opts["relpath"]), tags.append("rel")
    if opts.get("ext"):
        table, _ = existing_files(table), tags.append("ext")
    if opts.get("drop_errors"):
        table, _ = drop_errors(table), tags.append("noerr")
    if opts.get("remove_empty_caption"):
        table, _ = remove_empty_caption(table), tags.append("noempty")
    if opts.get("remove_url"):
        table, _ = remove_url(table), tags.append("nourl")
    if opts.get("remove_path_duplication"):
        table, _ = remove_duplicates(table, "path"), tags.append("noduppath")
    if opts.get("remove_text_duplication"):
        table, _ = remove_duplicates(table, "text"), tags.append("noduptext")
    if opts.get("refine_llm_caption"):
        table = table.assign(text=_need(table, "text", "--refine-llm-caption").map(refine_llm_caption))
        tags.append("llm")
    if opts.get("clean_caption"):
        table = table.assign(text=_need(table, "text", "--clean-caption").map(clean_caption))
        tags.append("clean")
    if opts.get("merge_cmotion"):
        table, _ = merge_cmotion(table), tags.append("cmcaption")
    ranges = [
        ("num_frames", "fmin", "fmax"),
        ("resolution", None, "hwmax"),
        ("aes", "aesmin", None),
        ("match", "matchmin", None),
        ("flow", "flowmin", "flowmax"),
        ("ocr", None, "ocrmax"),
        ("blur", "blurmin", None),
    ]
    for column, lo_key, hi_key in ranges:
        lo = opts.get(lo_key) if lo_key else None
        hi = opts.get(hi_key) if hi_key else None
        if lo is not None or hi is not None:
            table = score_range(table, column, lo, hi)
            tags += [f"{k}{opts[k]:g}" for k in (lo_key, hi_key) if k and opts.get(k) is not None]
    if opts.get("cmotion"):
        table = table[_need(table, "cmotion", "--cmotion").isin(opts["cmotion"])]
        tags.append("cm")
    if opts.get("train_column"):
        table, _ = table[[c for c in TRAIN_COLUMNS if c in table.columns]], tags.append("train")
    return table.reset_index(drop=True), tags
