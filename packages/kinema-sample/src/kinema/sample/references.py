"""Reference images and videos for conditioning: read, resize-and-crop to the clip size."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from kinema.core import KinemaError

Reference = "str | Path | torch.Tensor"

# decoded references are held as float frames (12 bytes a pixel) before they are resized to the clip: the size
# is read from the file's header first, so a small file that decodes to gigabytes is refused, not decoded
MAX_REFERENCE_FRAME_PIXELS = 40_000_000  # an 8K frame (7680x4320) is 33 megapixels
MAX_REFERENCE_PIXELS = 256_000_000  # every frame together: about 3 GB as float, 120 frames of 1080p
REFERENCE_FIX = "scale it down or trim it first (e.g. ffmpeg -i IN -vf scale=1280:-2 -t 5 OUT)"


def reference_size(path: str | Path) -> tuple[int, int, int]:
    """(frames, height, width) from the file's header, without decoding pixels."""
    from kinema.core.video import IMAGE_FORMATS, PILLOW_FORMATS, VideoReadError

    path = Path(path)
    if not path.is_file():
        raise KinemaError(f"reference {str(path)!r} does not exist (no such file; relative paths start from the "
                          "working folder)")
    try:
        if path.suffix.lower() in IMAGE_FORMATS | PILLOW_FORMATS:
            import warnings

            from PIL import Image

            try:
                with warnings.catch_warnings():  # the size is checked below, with a message that says what to do
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    with Image.open(path) as im:  # reads the header only
                        width, height = im.size
                        return int(getattr(im, "n_frames", 1)), height, width
            except Image.DecompressionBombError:
                raise KinemaError(f"reference {str(path)!r} is over PIL's decompression-bomb limit of "
                                  f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; the limit is "
                                  f"{MAX_REFERENCE_FRAME_PIXELS / 1e6:.0f} megapixels a frame: "
                                  f"{REFERENCE_FIX}") from None
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise KinemaError(f"reference {str(path)!r} has no video stream")
            stream = container.streams.video[0]
            return int(stream.frames or 1), int(stream.height), int(stream.width)
    except KinemaError:
        raise
    except Exception as exc:  # PIL and PyAV raise many types for a file they cannot read
        why = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
        raise VideoReadError(f"cannot read reference {str(path)!r} ({why}); give an image (.png, .jpg) or a video "
                             "(.mp4, .webm, .gif) file") from None


def check_reference_file(path: str | Path) -> tuple[int, int, int]:
    """Refuse a reference whose decoded pixels would not fit comfortably in memory (one line: file, size, limit)."""
    frames, height, width = reference_size(path)
    if height * width > MAX_REFERENCE_FRAME_PIXELS:
        raise KinemaError(f"reference {str(path)!r} is {width}x{height} ({height * width / 1e6:.0f} megapixels); the "
                          f"limit is {MAX_REFERENCE_FRAME_PIXELS / 1e6:.0f} megapixels a frame: {REFERENCE_FIX}")
    if frames * height * width > MAX_REFERENCE_PIXELS:
        raise KinemaError(f"reference {str(path)!r} has {frames} frames of {width}x{height} "
                          f"({frames * height * width / 1e6:.0f} megapixels in all); the limit is "
                          f"{MAX_REFERENCE_PIXELS / 1e6:.0f} megapixels: {REFERENCE_FIX}")
    return frames, height, width


def resize_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[3, T, H, W] -> [3, T, height, width]: scale to cover the target, then centre-crop (Open-Sora)."""
    _, t, h, w = video.shape
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    frames = video.permute(1, 0, 2, 3)  # T as batch
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=new_h < h)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return frames[:, :, top:top + height, left:left + width].permute(1, 0, 2, 3).clamp(-1, 1)


def load_reference(ref, height: int, width: int) -> torch.Tensor:
    """A path (image or video) or a float tensor [3, T, H, W] in [-1, 1] -> [3, T, height, width]."""
    if isinstance(ref, (str, Path)):
        from kinema.core.video import read_video, to_float

        check_reference_file(ref)
        video = to_float(read_video(ref).frames)
    elif isinstance(ref, torch.Tensor):
        video = ref.float()
        if video.dim() == 3:  # a single image [3, H, W]
            video = video[:, None]
        if video.dim() != 4 or video.shape[0] != 3:
            raise KinemaError(f"a reference tensor must be [3, T, H, W] (or [3, H, W]) in [-1, 1], "
                           f"got {tuple(ref.shape)}")
    else:
        raise KinemaError(f"a reference must be a file path or a tensor, got {type(ref).__name__}")
    return resize_crop(video, height, width)
