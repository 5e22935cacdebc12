"""The model contract: what a kinema video model takes, stated once.

Every registered video model (STDiT, STDiT2, DiT, PixArt, LatteT2V) subclasses :class:`VideoModel` and
returns a :class:`ModelContract` from ``contract()``. The pipeline, the trainer, the schedulers and
parallelism read the contract and build the model's keyword arguments with ``model_inputs`` — never by
inspecting ``forward``'s signature, config field names or submodule attributes.

    model(x, timestep, **model.model_inputs(caption, caption_mask, frame_mask=..., sizes=..., image_frames=...))

Size conditions (STDiT2) are made by one function, :func:`size_conditions`: ``ar`` is height / width
everywhere (tables, synthetic data, features, the pipeline). Open-Sora 1.1's released weights were trained
with width / height while sampled with height / width; fine-tuning them with their training convention is
the explicit ``ar_convention="width/height"`` switch, off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from kinema.core import KinemaError

AR_CONVENTIONS = ("height/width", "width/height")


@dataclass(frozen=True)
class ModelContract:
    """What one model takes besides the latents and the timestep.

    caption_channels / caption_length: caption features are [B, 1, caption_length, caption_channels]
        (caption_length is the null caption's length and the text encoder's max_length).
    patch_size: (t, h, w) latent patch; latents need not be multiples (models pad), but this is what a
        sequence-parallel split or a size table rounds to.
    frame_mask: takes a [B, T] frame mask (True = frame being denoised, False = given frame, modulated at
        t = 0): image-to-video, extension and Open-Sora 1.1's masked training.
    size_conditions: takes num_frames, height, width (pixels), ar, fps (:class:`SizeConditions`).
    image_frames: takes ``image_frames`` still images appended after the video frames (joint training).
    caption_dropout: swaps dropped captions for its own null caption (``drop`` in ``model_inputs``).
    max_frames: most latent frames one call takes (1 for an image model); None = any.
    latent_size: the (T, H, W) latent size fixed position tables were built for; None = any size.
    temporal_attention: its blocks attend along frames in a separate attention (sequence-parallel split).
    """

    caption_channels: int
    caption_length: int
    patch_size: tuple[int, int, int]
    frame_mask: bool = False
    size_conditions: bool = False
    image_frames: bool = False
    caption_dropout: bool = False
    max_frames: Optional[int] = None
    latent_size: Optional[tuple[int, int, int]] = None
    temporal_attention: bool = False


@dataclass(frozen=True)
class SizeConditions:
    """Per-sample size conditions: [B] float tensors (or numbers, broadcast over the batch)."""

    num_frames: object
    height: object
    width: object
    ar: object
    fps: object

    def batched(self, batch_size: int, device) -> dict[str, torch.Tensor]:
        out = {}
        for name in ("num_frames", "height", "width", "ar", "fps"):
            value = torch.as_tensor(getattr(self, name), dtype=torch.float32, device=device).reshape(-1)
            if value.numel() == 1:
                value = value.expand(batch_size)
            if value.numel() != batch_size:
                raise KinemaError(f"size condition {name} has {value.numel()} values for a batch of {batch_size}")
            out[name] = value
        return out


def aspect_condition(height, width, convention: str = "height/width"):
    """The ``ar`` a model is conditioned on: height / width (default) or width / height (Open-Sora 1.1
    training); numbers or tensors."""
    if convention not in AR_CONVENTIONS:
        raise KinemaError(f"ar_convention {convention!r}; choose one of {', '.join(AR_CONVENTIONS)}")
    return height / width if convention == "height/width" else width / height


def size_conditions(num_frames, height, width, fps, ar_convention: str = "height/width") -> SizeConditions:
    """The one place size conditions are made (pixel height/width, video frames, fps)."""
    return SizeConditions(num_frames=num_frames, height=height, width=width,
                          ar=aspect_condition(height, width, ar_convention), fps=fps)


class VideoModel:
    """Mixin every kinema video model implements (with diffusers' ``ModelMixin``)."""

    def contract(self) -> ModelContract:
        raise NotImplementedError

    def null_caption(self) -> Optional[torch.Tensor]:
        """The learned unconditional caption [caption_length, caption_channels], or None when the model has
        none (the pipeline then encodes the empty prompt, as Open-Sora-Plan does)."""
        return None

    def model_inputs(
        self,
        caption: torch.Tensor,
        caption_mask: Optional[torch.Tensor] = None,
        *,
        frame_mask: Optional[torch.Tensor] = None,
        sizes: Optional[SizeConditions] = None,
        image_frames: int = 0,
        drop: Optional[torch.Tensor] = None,
    ) -> dict:
        """Keyword arguments for ``forward`` (after x and timestep). Conditions the model does not take are
        refused with the reason; size conditions are required by models that take them."""
        c = self.contract()
        name = type(self).__name__
        kwargs: dict = {"y": caption, "mask": caption_mask}
        if frame_mask is not None:
            if not c.frame_mask:
                raise KinemaError(f"{name} takes no frame mask: image-to-video, extension and mask_ratios need "
                                  "a model with frame conditioning (STDiT, STDiT2, DiT)")
            kwargs["x_mask"] = frame_mask
        if c.size_conditions:
            if sizes is None:
                raise KinemaError(f"{name} is conditioned on num_frames, height, width, ar and fps; pass sizes")
            kwargs.update(sizes.batched(caption.shape[0], caption.device))
        if image_frames:
            if not c.image_frames:
                raise KinemaError(f"{name} takes no joint image frames (image_frames={image_frames}); "
                                  "use a joint image-video model (LatteT2V)")
            kwargs["use_image_num"] = int(image_frames)
        if drop is not None:
            if not c.caption_dropout:
                raise KinemaError(f"{name} has no null caption to drop captions to")
            kwargs["force_drop_ids"] = drop.long()
        return kwargs

    def frame_mask_argument(self, frame_mask: Optional[torch.Tensor]) -> dict:
        """Just the frame-mask keyword (the pipeline's loop changes it per step)."""
        if frame_mask is None:
            return {}
        if not self.contract().frame_mask:
            raise KinemaError(f"{type(self).__name__} takes no frame mask")
        return {"x_mask": frame_mask}
