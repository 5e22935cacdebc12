"""Video size from Open-Sora 1.1's resolution / aspect-ratio tables, and size checks.

Aspect ratios are written height:width as in Open-Sora (``9:16`` is the landscape 240x426 at 240p),
or as the table key height/width (``0.56``).
"""

from __future__ import annotations

from kinema.core import KinemaError
from kinema.core.aspect import ASPECT_RATIOS

DEFAULT_ASPECT_RATIO = "9:16"


def ratio_value(aspect_ratio: str) -> float | None:
    """``"9:16"`` (height:width) or ``"0.56"`` (height/width) -> height / width; None if it is neither."""
    text = str(aspect_ratio).strip()
    try:
        if ":" in text:
            h, w = text.split(":", 1)
            return float(h) / float(w)
        return float(text)
    except (ValueError, ZeroDivisionError):
        return None


def ratio_key(aspect_ratio: str, table: dict[str, tuple[int, int]]) -> str:
    """``"9:16"`` or ``"0.56"`` -> the table key (nearest height/width within 0.01)."""
    value = ratio_value(aspect_ratio)
    if value is not None:
        key = min(table, key=lambda k: abs(float(k) - value))
        if abs(float(key) - value) <= 0.01:
            return key
    shown = ", ".join(f"{k} ({h}x{w})" for k, (h, w) in table.items())
    raise KinemaError(f"aspect ratio {aspect_ratio!r} is not in this resolution's table; "
                   f"valid height/width ratios: {shown}")


def size_from_table(resolution: str, aspect_ratio: str | None = None) -> tuple[int, int]:
    """(height, width) in pixels for a resolution name (``240p``, ``512``, ...) and aspect ratio."""
    if resolution not in ASPECT_RATIOS:
        raise KinemaError(f"unknown resolution {resolution!r}; valid: {', '.join(ASPECT_RATIOS)}")
    table = ASPECT_RATIOS[resolution][1]
    return table[ratio_key(aspect_ratio or DEFAULT_ASPECT_RATIO, table)]


def check_size(height: int, width: int, multiple: int) -> None:
    """Height and width must be positive multiples of the VAE's spatial compression."""
    for name, value in (("height", height), ("width", width)):
        if value < multiple or value % multiple:
            lower, upper = max(multiple, value - value % multiple), value - value % multiple + multiple
            options = sorted({lower, upper})
            raise KinemaError(
                f"{name} {value} is not supported: it must be a positive multiple of {multiple} (the VAE's "
                f"spatial compression); valid nearby: {' or '.join(map(str, options))}; or pick a size "
                f"from the tables with resolution= ({', '.join(ASPECT_RATIOS)}) and aspect_ratio="
            )


def fit_to_multiple(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Table sizes such as 240x426 are used as Open-Sora does: the latent grid is size // multiple."""
    return height - height % multiple, width - width % multiple


def check_num_frames(num_frames: int, temporal_compression: int) -> None:
    if num_frames < 1:
        raise KinemaError(f"num_frames must be at least 1, got {num_frames}")
    if temporal_compression > 1 and (num_frames - 1) % temporal_compression:
        k = (num_frames - 1) // temporal_compression
        options = [1 + k * temporal_compression, 1 + (k + 1) * temporal_compression]
        raise KinemaError(f"num_frames {num_frames} does not fit this VAE (1 + {temporal_compression}k frames); "
                       f"valid nearby: {' or '.join(map(str, options))}")
