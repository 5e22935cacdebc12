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

    latent_channels: channels of the latents it denoises (the VAE's latent channels).
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

    latent_channels: int
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


def size_rows(value, name: str, batch_size: int, device) -> torch.Tensor:
    """One size condition as a [batch_size] float tensor: a number, one value per sample, or n values for a
    batch of k*n, tiled k times as Open-Sora's size embedder repeats them (the n prompts of a guided 2n batch)."""
    value = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if value.numel() == 0 or batch_size % value.numel():
        raise KinemaError(f"size condition {name} has {value.numel()} values for a batch of {batch_size}; "
                          "pass one value, one per sample, or one per prompt of a guided batch")
    return value.repeat(batch_size // value.numel())


@dataclass(frozen=True)
class SizeConditions:
    """Per-sample size conditions: [B] float tensors, numbers (broadcast over the batch), or [n] tensors for a
    batch of k*n (tiled, see :func:`size_rows`)."""

    num_frames: object
    height: object
    width: object
    ar: object
    fps: object

    def batched(self, batch_size: int, device) -> dict[str, torch.Tensor]:
        names = ("num_frames", "height", "width", "ar", "fps")
        return {name: size_rows(getattr(self, name), name, batch_size, device) for name in names}


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

    def check_caption_given(self, caption: Optional[torch.Tensor]) -> None:
        """Every call takes caption features: a missing caption (None) or one of no tokens is refused rather than
        read as "unconditional", naming the unconditional input this model was trained with."""
        if caption is not None and (caption.ndim < 2 or caption.shape[-2] > 0):  # other shapes: the model's check
            return
        got = "no caption (y=None)" if caption is None else f"caption features {tuple(caption.shape)} with no tokens"
        unconditional = ("its null caption, model.null_caption() expanded to [B, 1, L, C]"
                         if self.null_caption() is not None else "the text encoder's features of the empty prompt")
        raise KinemaError(f"{type(self).__name__} got {got}: pass caption features [B, 1, L, C]; for an "
                          f"unconditional call pass {unconditional}")

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
        self.check_caption_given(caption)
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
