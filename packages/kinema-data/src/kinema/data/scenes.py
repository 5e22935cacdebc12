"""Scene detection (PySceneDetect) and cutting videos into one clip per scene.

Detection uses PySceneDetect's detectors with upstream's settings (AdaptiveDetector,
adaptive_threshold 3.0, start_in_scene) through its SceneManager, so the cuts are the ones the
``scenedetect`` CLI finds with the same settings. Files OpenCV can decode go through
PySceneDetect's own OpenCV backend (what its CLI uses); formats only Pillow reads (animated
WebP, GIF) are decoded by ``kinema.core.video`` and handed over as frames.

Cutting is frame-exact: a scene [start, end) becomes a clip of exactly end - start frames,
written by PyAV (``kinema.core.video.write_video``) or by the ffmpeg program.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from kinema.core import KinemaError
from kinema.core.video import PILLOW_FORMATS, probe_video, read_video, write_video

from .info import video_info
from .stage import Stage

# ----------------------------------------------------------------------------- detection


def make_detector(kind: str = "adaptive", threshold: float | None = None, min_scene_len: int = 15):
    """PySceneDetect detector by CLI name: adaptive (upstream's), content, threshold, hash, histogram."""
    from scenedetect import detectors

    classes = {
        "adaptive": (detectors.AdaptiveDetector, "adaptive_threshold", 3.0),
        "content": (detectors.ContentDetector, "threshold", 27.0),
        "threshold": (detectors.ThresholdDetector, "threshold", 12.0),
        "hash": (detectors.HashDetector, "threshold", 0.395),
        "histogram": (detectors.HistogramDetector, "threshold", 0.05),
    }
    if kind not in classes:
        raise KinemaError(f"unknown scene detector {kind!r}; available: {', '.join(classes)}")
    cls, threshold_arg, default = classes[kind]
    return cls(**{threshold_arg: default if threshold is None else threshold, "min_scene_len": min_scene_len})


def _frames_stream(frames_bgr: np.ndarray, fps: float, source: str):
    """A PySceneDetect VideoStream over decoded frames (for formats its backends cannot open)."""
    from scenedetect.common import FrameTimecode, Timecode
    from scenedetect.video_stream import VideoStream

    class FramesStream(VideoStream):
        BACKEND_NAME = "kinema_frames"

        def __init__(self):
            self._frames, self._rate, self._read = frames_bgr, Fraction(fps).limit_denominator(1001), 0

        path = property(lambda self: source)
        name = property(lambda self: Path(source).stem)
        is_seekable = property(lambda self: False)
        frame_rate = property(lambda self: self._rate)
        duration = property(lambda self: self.base_timecode + len(self._frames))
        frame_size = property(lambda self: (self._frames.shape[2], self._frames.shape[1]))
        aspect_ratio = property(lambda self: 1.0)
        frame_number = property(lambda self: self._read)

        @property
        def position(self):
            if self._read < 1:
                return self.base_timecode
            rate = self._rate
            timecode = Timecode(pts=(self._read - 1) * rate.denominator, time_base=Fraction(1, rate.numerator))
            return FrameTimecode(timecode=timecode, fps=rate)

        @property
        def position_ms(self):
            return 1000.0 * max(0, self._read - 1) / float(self._rate)

        def read(self, decode: bool = True):
            if self._read >= len(self._frames):
                return False
            self._read += 1
            return self._frames[self._read - 1] if decode else True

        def reset(self):
            self._read = 0

        def seek(self, target):
            raise NotImplementedError("seeking is not supported")

    return FramesStream()


def detect_scenes(path: str | os.PathLike, detector: str = "adaptive", threshold: float | None = None,
                  min_scene_len: int = 15) -> tuple[list[tuple[int, int]], float]:
    """Scenes as [(start_frame, end_frame_exclusive), ...] covering the video, and its fps."""
    from scenedetect import SceneManager, open_video

    path = str(path)
    if Path(path).suffix.lower() in PILLOW_FORMATS:
        video = read_video(path)
        bgr = video.frames.numpy()[..., ::-1]  # PySceneDetect works on OpenCV's BGR frames
        stream = _frames_stream(np.ascontiguousarray(bgr), video.fps, path)
    else:
        probe_video(path)  # a clear error for unreadable files before OpenCV's vaguer one
        stream = open_video(path, backend="opencv")
    manager = SceneManager()
    manager.add_detector(make_detector(detector, threshold, min_scene_len))
    manager.detect_scenes(video=stream)
    scenes = manager.get_scene_list(start_in_scene=True)
    frames = [(int(start.frame_num), int(end.frame_num)) for start, end in scenes]
    if not frames and stream.frame_number > 0:
        frames = [(0, stream.frame_number)]
    return frames, float(stream.frame_rate)


def timecode(frame: int, fps: float) -> str:
    seconds = frame / fps
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"


class SceneDetectStage(Stage):
    """Adds ``timestamp`` (upstream's str of (start, end) timecodes) and ``scenes`` (JSON frame ranges)."""

    name = "scenes"
    columns = ("timestamp", "scenes")

    def __init__(self, detector: str = "adaptive", threshold: float | None = None, min_scene_len: int = 15):
        self.detector, self.threshold, self.min_scene_len = detector, threshold, min_scene_len

    def check(self) -> None:
        make_detector(self.detector, self.threshold, self.min_scene_len)

    def process(self, row: dict) -> dict:
        scenes, fps = detect_scenes(row["path"], self.detector, self.threshold, self.min_scene_len)
        stamps = [(timecode(s, fps), timecode(e, fps)) for s, e in scenes]
        return {"timestamp": str(stamps), "scenes": json.dumps(scenes)}


# ----------------------------------------------------------------------------- cutting


def even_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """Scale so the shorter side is at most ``short_side`` (keeping the aspect), both sides even."""
    scale = 1.0 if not short_side or min(height, width) <= short_side else short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def cut_with_pyav(src: str, dst: Path, start: int, end: int, size: tuple[int, int] | None) -> None:
    video = read_video(src, start=start, num_frames=end - start)
    frames = video.frames.numpy()
    if size is not None and size != frames.shape[1:3]:
        frames = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in frames])
    write_video(dst, frames, video.fps)


def cut_with_ffmpeg(src: str, dst: Path, start: int, end: int, size: tuple[int, int] | None) -> None:
    """Frame-exact cut with the ffmpeg program: select frames by number, re-time from zero."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise KinemaError("the ffmpeg cutter needs the ffmpeg program: apt-get install ffmpeg (or use --backend pyav)")
    filters = [f"select=between(n\\,{start}\\,{end - 1})", "setpts=N/FRAME_RATE/TB"]
    if size is not None:
        filters.append(f"scale={size[1]}:{size[0]}")
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    command = [ffmpeg, "-nostdin", "-y", "-v", "error", "-i", src, "-vf", ",".join(filters), "-an",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-fps_mode", "passthrough", str(tmp)]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise KinemaError(f"ffmpeg failed on {src!r}: {done.stderr.strip()[-500:]}")
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def scene_ranges(row: dict) -> list[tuple[int, int]]:
    if isinstance(row.get("scenes"), str):
        return [tuple(s) for s in json.loads(row["scenes"])]
    raise KinemaError(f"row {row['path']!r} has no 'scenes' column; run `kinema data scenes` first")


def clip_stem(source: str) -> str:
    """A file-name stem unique to ``source``'s path and the same on every run: the parent folder and
    stem (readable), then a hash of the whole path as the table holds it (``a/clip.mp4`` and
    ``b/clip.mp4`` must not write the same clip; a resumed run must name its clips as before)."""
    path = Path(source)
    readable = re.sub(r"[^\w.-]+", "_", f"{path.parent.name}_{path.stem}".strip("_"))[:80] or "clip"
    digest = hashlib.sha1(str(source).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{readable}-{digest}"


class SceneCutStage(Stage):
    """One clip per scene: ``{save_dir}/{clip_stem(source)}_scene-{i}.mp4``; rows keep ``source`` and frame range."""

    name = "cut"
    expands = True
    columns = ("source", "frame_start", "frame_end")

    def __init__(self, save_dir: str, min_seconds: float | None = None, max_seconds: float | None = None,
                 short_side: int | None = 720, backend: str = "pyav"):
        if backend not in ("pyav", "ffmpeg"):
            raise KinemaError(f"unknown cut backend {backend!r}; available: pyav, ffmpeg")
        self.save_dir, self.min_seconds, self.max_seconds = str(save_dir), min_seconds, max_seconds
        self.short_side, self.backend = short_side, backend

    def check(self) -> None:
        if self.backend == "ffmpeg" and shutil.which("ffmpeg") is None:
            raise KinemaError("the ffmpeg cutter needs the ffmpeg program: apt-get install ffmpeg (or "
                "use --backend pyav)")

    def process(self, row: dict) -> list[dict]:
        src = row["path"]
        info = probe_video(src)
        size = even_size(info.height, info.width, self.short_side)
        size = None if size == (info.height, info.width) else size
        backend = self.backend
        if backend == "ffmpeg" and Path(src).suffix.lower() in PILLOW_FORMATS:
            backend = "pyav"  # ffmpeg cannot decode animated WebP
        cut = cut_with_ffmpeg if backend == "ffmpeg" else cut_with_pyav
        base = {k: v for k, v in row.items() if k not in ("timestamp", "scenes")}
        clips = []
        for index, (start, end) in enumerate(scene_ranges(row)):
            if self.min_seconds is not None and (end - start) / info.fps < self.min_seconds:
                continue
            if self.max_seconds is not None:
                end = min(end, start + int(round(self.max_seconds * info.fps)))
            dst = Path(self.save_dir) / f"{clip_stem(src)}_scene-{index}.mp4"
            dst.parent.mkdir(parents=True, exist_ok=True)
            cut(src, dst, start, end, size)
            clips.append({**base, **video_info(str(dst)), "path": str(dst), "source": src,
                          "frame_start": start, "frame_end": end})
        return clips
