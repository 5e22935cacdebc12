"""Video info stage: frame count, size and fps of every row (upstream ``datautil --info``).

The stage also refuses files cut short (``integrity.check_complete``): their row gets an ``info_error``,
and later stages carry it over without processing it."""

from __future__ import annotations

from kinema.core.video import probe_video

from .integrity import check_complete
from .stage import Stage


def video_info(path: str) -> dict:
    info = probe_video(path)
    return {
        "num_frames": info.num_frames,
        "height": info.height,
        "width": info.width,
        "aspect_ratio": info.height / info.width,
        "fps": info.fps,
        "resolution": info.height * info.width,
    }


class VideoInfoStage(Stage):
    name = "info"
    columns = ("num_frames", "height", "width", "aspect_ratio", "fps", "resolution")

    def process(self, row: dict) -> dict:
        info = video_info(row["path"])
        check_complete(row["path"])
        return info
