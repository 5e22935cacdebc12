"""Catch videos cut short: the container's header promises more than its data holds.

A fast-start mp4 (index at the front) that lost its tail still reports the header's frame count and
duration, and decoders read it without complaint until the data runs out, so every later stage
would see a short clip that claims to be long. FFmpeg checks nothing of the kind up front. The
check here is cheap: seek to the last keyframe before the promised end and read the few packets
after it (no decoding); a whole file delivers packets up to its promised end, a cut one stops early.
"""

from __future__ import annotations

from pathlib import Path

from kinema.core.video import PILLOW_FORMATS, VideoReadError

MICROSECONDS = 1_000_000  # FFmpeg's container-level time base


def _promised_end_s(container, stream) -> float | None:
    """End of the stream in seconds as the header tells it (stream duration, else the container's)."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    if container.duration and len(container.streams) == 1:  # else it may be an audio track's, longer
        return ((container.start_time or 0) + container.duration) / MICROSECONDS
    return None


def _data_end_s(container, stream, promised_end_s: float) -> float | None:
    """End (pts + duration) of the last packet found after seeking near the promised end."""
    container.seek(int(promised_end_s * MICROSECONDS), backward=True, any_frame=False)
    end = None
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None:
            stop = float((packet.pts + (packet.duration or 0)) * stream.time_base)
            end = stop if end is None else max(end, stop)
    return end


def check_complete(path: str) -> None:
    """Raise VideoReadError when the file's data ends before its header says (a truncated file)."""
    import av

    if Path(path).suffix.lower() in PILLOW_FORMATS:
        return  # Pillow counts WebP/GIF frames from the data itself
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            promised = _promised_end_s(container, stream)
            if promised is None:
                return  # no header claim to contradict: the frame count came from the packets
            frame_s = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            data_end = _data_end_s(container, stream, promised)
    except Exception as exc:  # a seek or read past the data's end is the same finding
        raise VideoReadError(f"cannot read video {str(path)!r}: truncated or corrupt near its end "
                             f"({type(exc).__name__}: {exc})") from None
    if data_end is None or data_end < promised - frame_s - 1e-3:  # one frame of slack for rounding
        found = "no data" if data_end is None else f"data for {data_end:.2f} s"
        raise VideoReadError(f"cannot read video {str(path)!r}: truncated: the header promises {promised:.2f} s "
                             f"but the file holds {found} (file cut short? re-download or drop it)")
