"""Video read/write: mp4/webm/mkv/mov through PyAV, animated WebP and GIF through Pillow.

Frames are uint8 tensors [T, H, W, 3]. Reads are frame-accurate (frames are counted
from the first decoded frame, never guessed from timestamps alone); writes are atomic.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .errors import KinemaError

PILLOW_FORMATS = {".webp", ".gif"}
IMAGE_FORMATS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
WRITABLE = {".mp4", ".webp", ".gif", ".png"}


class VideoReadError(KinemaError):
    """A video file could not be read (missing, not a video, corrupt or truncated)."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    duration: float
    codec: str


@dataclass
class Video:
    frames: torch.Tensor  # uint8 [T, H, W, 3]
    fps: float


def _fail(path, why: str) -> VideoReadError:
    return VideoReadError(f"cannot read video {str(path)!r}: {why}")


# ----------------------------------------------------------------------------- probing


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps, size and codec, without decoding pixels where the container allows."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    suffix = path.suffix.lower()
    if suffix in PILLOW_FORMATS or suffix in IMAGE_FORMATS:
        return _probe_pillow(path)
    return _probe_av(path)


def _probe_pillow(path: Path) -> VideoInfo:
    from PIL import Image

    try:
        with Image.open(path) as im:
            n = getattr(im, "n_frames", 1)
            durations = []
            for i in range(min(n, 8)):
                im.seek(i)
                im.load()  # WebP sets the frame duration only once the frame is loaded
                durations.append(im.info.get("duration") or 0)
            width, height = im.size
            codec = (im.format or path.suffix[1:]).lower()
    except Exception as exc:
        raise _fail(path, f"{type(exc).__name__}: {exc}") from None
    fps = _fps_from_durations_ms(durations)
    return VideoInfo(str(path), n, fps, height, width, n / fps, codec)


def _fps_from_durations_ms(durations: list[float]) -> float:
    positive = [d for d in durations if d and d > 0]
    return 1000.0 / float(np.median(positive)) if positive else 25.0


def _probe_av(path: Path) -> VideoInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _fail(path, "the file has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            n = stream.frames
            if not n:  # container without a frame count: count packets (no decoding)
                n = sum(1 for p in container.demux(stream) if p.size > 0)
            duration = n / fps
            return VideoInfo(str(path), n, fps, stream.height, stream.width, duration, stream.codec_context.name)
    except VideoReadError:
        raise
    except Exception as exc:
        raise _fail(path, f"{type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------- reading


def read_video(
    path: str | os.PathLike, start: int = 0, num_frames: int | None = None, step: int = 1
) -> Video:
    """Frames start, start+step, ... (num_frames of them, or to the end) as uint8 [T, H, W, 3].

    Raises VideoReadError naming the file when it is unreadable, or when it ends before
    the requested frames (a truncated file).
    """
    if start < 0 or step < 1 or (num_frames is not None and num_frames < 1):
        raise KinemaError(f"bad frame selection start={start}, num_frames={num_frames}, step={step}")
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    wanted = None if num_frames is None else set(range(start, start + num_frames * step, step))
    last = None if wanted is None else max(wanted)
    suffix = path.suffix.lower()
    if suffix in PILLOW_FORMATS or suffix in IMAGE_FORMATS:
        frames, fps, total = _read_pillow(path, start, step, last)
    else:
        frames, fps, total = _read_av(path, start, step, last)
    if wanted is not None and len(frames) < num_frames:
        raise _fail(path, f"asked for {num_frames} frames from frame {start} (step {step}) but the video "
                          f"ends after {total} frames")
    if not frames:
        raise _fail(path, f"no frames decoded (start={start})")
    return Video(torch.from_numpy(np.stack(frames)), fps)


def _keep(index: int, start: int, step: int) -> bool:
    return index >= start and (index - start) % step == 0


def _read_pillow(path: Path, start: int, step: int, last: int | None):
    from PIL import Image

    frames, durations = [], []
    try:
        with Image.open(path) as im:
            n = getattr(im, "n_frames", 1)
            stop = n if last is None else min(n, last + 1)
            for i in range(stop):
                im.seek(i)
                im.load()
                durations.append(im.info.get("duration") or 0)
                if _keep(i, start, step):
                    frames.append(np.asarray(im.convert("RGB")))
    except Exception as exc:
        raise _fail(path, f"{type(exc).__name__}: {exc}") from None
    return frames, _fps_from_durations_ms(durations), n


def _read_av(path: Path, start: int, step: int, last: int | None):
    import av

    frames, index = [], -1
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _fail(path, "the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            # Decode from the first frame: exact frame indices even for streams whose
            # timestamps do not start at zero; clips here are short.
            for frame in container.decode(stream):
                index += 1
                if last is not None and index > last:
                    break
                if _keep(index, start, step):
                    frames.append(frame.to_ndarray(format="rgb24"))
            expected = stream.frames
    except VideoReadError:
        raise
    except Exception as exc:
        raise _fail(path, f"{type(exc).__name__}: {exc}") from None
    total = index + 1
    if last is None and expected and total < expected:
        raise _fail(path, f"the container promises {expected} frames but only {total} decode (truncated file?)")
    return frames, fps, total


# ----------------------------------------------------------------------------- writing


def write_video(path: str | os.PathLike, frames, fps: float, quality: int = 18) -> Path:
    """Write uint8 [T, H, W, 3] frames; the format follows the extension (.mp4 .webp .gif .png).

    The file appears complete or not at all (written to a temporary name, then renamed).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise KinemaError(f"cannot write {str(path)!r}: unsupported extension; use one of "
            f"{', '.join(sorted(WRITABLE))}")
    array = _as_uint8_thwc(frames)
    if suffix == ".png" and array.shape[0] != 1:
        raise KinemaError(f"a .png holds one frame, got {array.shape[0]}; use .mp4, .webp or .gif for videos")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{suffix}")
    try:
        if suffix == ".mp4":
            _write_mp4(tmp, array, fps, quality)
        else:
            _write_pillow(tmp, array, fps, suffix)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _as_uint8_thwc(frames) -> np.ndarray:
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise KinemaError(f"frames must be [T, H, W, 3], got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        raise KinemaError(f"frames must be uint8, got {array.dtype}; convert with kinema.core.video.to_uint8")
    return np.ascontiguousarray(array)


def _write_mp4(path: Path, array: np.ndarray, fps: float, quality: int) -> None:
    import av

    t, h, w, _ = array.shape
    if h % 2 or w % 2:  # yuv420p needs even sizes
        warnings.warn(f"padding {h}x{w} frames to even size for h264", stacklevel=3)
        array = np.pad(array, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = array.shape[2], array.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(quality)}
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_pillow(path: Path, array: np.ndarray, fps: float, suffix: str) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in array]
    if suffix == ".png":
        images[0].save(path, format="PNG")
        return
    duration = max(1, round(1000 / fps))
    fmt = "WEBP" if suffix == ".webp" else "GIF"
    extra = {"lossless": False, "quality": 90} if fmt == "WEBP" else {}
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=duration, loop=0, **extra)


# ----------------------------------------------------------------------------- tensors


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [3, T, H, W] in [-1, 1] (the models' layout and range)."""
    return frames.permute(3, 0, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """float [3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3] (clamped, rounded)."""
    return video.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu()
