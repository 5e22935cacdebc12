"""Open-Sora 1.1 conditioning: the ``mask_strategy`` syntax and how it places reference latents.

A mask_strategy is ``;``-separated groups of up to six comma-separated numbers::

    loop_id, ref_id, ref_start, target_start, length, edit_ratio      defaults: 0, 0, 0, 1, 0

- loop_id      which generation loop (clip) the insertion applies to; 0 = the first clip
- ref_id       index into the prompt's reference list (images or videos)
- ref_start    first latent frame taken from the reference; negative counts from its end
- target_start first latent frame written in the generated clip; negative counts from its end
- length       number of latent frames copied (clipped to what fits)
- edit_ratio   0 = keep the reference frames, 1 = regenerate them fully, in between = edit (SDEdit)

Positions count *latent* frames (equal to video frames for a frame-wise VAE; one latent frame per
``temporal_compression`` video frames for the causal video VAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from kinema.core import KinemaError

FIELDS = ("loop_id", "ref_id", "ref_start", "target_start", "length", "edit_ratio")


class MaskStrategyError(KinemaError):
    """A malformed mask_strategy; the message names the group and the field."""


@dataclass(frozen=True)
class Insertion:
    """One ``;`` group: copy reference frames into the generated clip."""

    loop_id: int = 0
    ref_id: int = 0
    ref_start: int = 0
    target_start: int = 0
    length: int = 1
    edit_ratio: float = 0.0

    def __str__(self) -> str:
        return ",".join(str(getattr(self, f.name)) for f in fields(self))


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _field_error(group_no: int, group: str, index: int, problem: str) -> MaskStrategyError:
    return MaskStrategyError(
        f"mask_strategy group {group_no} ({group.strip()!r}): field {index + 1} ({FIELDS[index]}) {problem}; "
        f"fields are {', '.join(FIELDS)}, e.g. \"0,0,0,-8,8\""
    )


def _parse_int(text: str, group_no: int, group: str, index: int, minimum: int | None) -> int:
    token = text.strip()
    sign, digits = (token[0], token[1:]) if token.startswith(("+", "-")) else ("", token)
    if not digits.isdigit() or not digits.isascii():
        raise _field_error(group_no, group, index, f"must be an integer, got {token!r}")
    value = int(sign + digits)
    if minimum is not None and value < minimum:
        raise _field_error(group_no, group, index, f"must be >= {minimum}, got {value}")
    return value


def _parse_ratio(text: str, group_no: int, group: str, index: int) -> float:
    token = text.strip()
    try:
        value = float(token)
    except ValueError:
        raise _field_error(group_no, group, index, f"must be a number in [0, 1], got {token!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise _field_error(group_no, group, index, f"must be a number in [0, 1], got {token!r}")
    return value


def parse_mask_strategy(text: str | None) -> list[Insertion]:
    """``"0;0,1,0,-1,1"`` -> [Insertion(...), Insertion(...)]; None or "" -> no insertions."""
    if text is None or not str(text).strip():
        return []
    if not isinstance(text, str):
        raise MaskStrategyError(f"mask_strategy must be text like \"0,0,0,-8,8\", got {type(text).__name__}")
    insertions = []
    for group_no, group in enumerate(text.split(";"), start=1):
        if not group.strip():
            raise MaskStrategyError(f"mask_strategy group {group_no} is empty (stray ';' in {text!r})")
        parts = group.split(",")
        if len(parts) > len(FIELDS):
            raise MaskStrategyError(f"mask_strategy group {group_no} ({group.strip()!r}) has {len(parts)} fields; "
                                    f"at most {len(FIELDS)}: {', '.join(FIELDS)}")
        minimums = (0, 0, None, None, 1)
        values: list = [_parse_int(p, group_no, group, i, minimums[i]) for i, p in enumerate(parts[:5])]
        if len(parts) == 6:
            values.append(_parse_ratio(parts[5], group_no, group, 5))
        insertions.append(Insertion(*values))
    return insertions


def format_mask_strategy(insertions: list[Insertion]) -> str:
    return ";".join(str(i) for i in insertions)


# --------------------------------------------------------------------------------------------
# Placing references
# --------------------------------------------------------------------------------------------


def apply_insertions(z: torch.Tensor, refs: list[torch.Tensor], insertions: list[Insertion],
                     loop_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Write reference latents into one sample's start latents.

    z: [C, T, H, W]; refs: reference latents, each [C, T_ref, H, W]. Returns (z, mask [T]) where mask
    is 1 for frames to generate and the insertion's edit_ratio for written frames.
    """
    z = z.clone()
    frames = z.shape[1]
    mask = torch.ones(frames, dtype=torch.float32, device=z.device)
    for ins in insertions:
        if ins.loop_id != loop_id:
            continue
        if ins.ref_id >= len(refs):
            raise MaskStrategyError(f"mask_strategy {ins}: ref_id {ins.ref_id} but only {len(refs)} reference(s) "
                                    "were given; add one with --reference")
        ref = refs[ins.ref_id]
        if ref.shape[0] != z.shape[0] or ref.shape[2:] != z.shape[2:]:
            raise MaskStrategyError(f"reference {ins.ref_id} has latent shape {tuple(ref.shape)}, the clip "
                                    f"{tuple(z.shape)}; references must be encoded at the clip's size")
        ref_start = ins.ref_start + ref.shape[1] if ins.ref_start < 0 else ins.ref_start
        target = ins.target_start + frames if ins.target_start < 0 else ins.target_start
        if not 0 <= ref_start < ref.shape[1]:
            raise MaskStrategyError(f"mask_strategy {ins}: ref_start {ins.ref_start} is outside reference "
                                    f"{ins.ref_id}'s {ref.shape[1]} latent frames")
        if not 0 <= target < frames:
            raise MaskStrategyError(f"mask_strategy {ins}: target_start {ins.target_start} is outside the clip's "
                                    f"{frames} latent frames")
        length = min(ins.length, frames - target, ref.shape[1] - ref_start)
        z[:, target:target + length] = ref[:, ref_start:ref_start + length].to(z)
        mask[target:target + length] = ins.edit_ratio
    return z, mask


def loop_insertion(loop_id: int, ref_id: int, condition_frame_length: int) -> Insertion:
    """Long videos: the previous clip's last frames (encoded as reference ``ref_id``) open the next clip."""
    return Insertion(loop_id, ref_id, 0, 0, condition_frame_length, 0.0)


def pixel_frames(latent_frames: int, temporal_compression: int) -> int:
    """Video frames spanned by ``latent_frames`` latents (causal VAEs: the first latent is one frame)."""
    return 1 + temporal_compression * (latent_frames - 1)
