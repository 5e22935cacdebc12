"""Reading back what the trackers wrote: TensorBoard event files and an offline wandb run."""

from __future__ import annotations

import glob
import json
from pathlib import Path


def tensorboard_events(run_folder) -> "EventAccumulator":  # noqa: F821
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(Path(run_folder) / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def wandb_history(run_folder) -> list[dict]:
    """The history rows of the offline run's ``.wandb`` file. Recent wandb ships no reader for it, so the
    LevelDB-style log (7-byte file header, 32 KiB blocks of [crc32, length, type] chunks) is read here."""
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(str(Path(run_folder) / "wandb" / "offline-run-*" / "run-*.wandb"))
    raw = Path(path).read_bytes()
    pos, pending, rows = 7, b"", []
    while pos + 7 <= len(raw):
        space = 32768 - pos % 32768
        if space < 7:  # a block's tail too short for a chunk header is padding
            pos += space
            continue
        length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
        pending += raw[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    return rows
