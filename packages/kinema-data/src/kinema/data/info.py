"""Video info stage: frame count, size and fps of every row (upstream ``datautil --info``)."""

from __future__ import annotations

from kinema.core.video import probe_video

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
        return video_info(row["path"])
