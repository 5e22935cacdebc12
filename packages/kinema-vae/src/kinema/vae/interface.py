"""The interface both video VAEs share, so pipelines and trainers never care which one they hold.

    z = vae.encode_video(x)        # x [B,3,T,H,W] in [-1,1] -> latents already * scaling_factor
    x = vae.decode_video(z)        # -> [B,3,T',H,W]
    vae.latent_size((T, H, W))     # -> (t, h, w)

plus diffusers-style `encode(x).latent_dist` / `decode(z).sample`, `scaling_factor`,
`latent_channels`, `temporal_compression`, `spatial_compression` and tiling/slicing switches; for training,
`get_last_layer()` (the adaptive GAN weight's reference) and `encoder_modules()` (what computes the latents).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from kinema.core import KinemaError

FRAME_POLICIES = ("trim", "pad")


def valid_num_frames(num_frames: int, temporal_compression: int) -> bool:
    return num_frames >= 1 and (num_frames - 1) % temporal_compression == 0


def fit_num_frames(num_frames: int, temporal_compression: int, policy: str = "trim") -> int:
    """The nearest frame count of the form 1 + k*temporal_compression (down for trim, up for pad)."""
    if policy not in FRAME_POLICIES:
        raise KinemaError(f"unknown frame policy {policy!r}; use one of {', '.join(FRAME_POLICIES)}")
    if num_frames < 1:
        raise KinemaError("a video needs at least 1 frame")
    k, rest = divmod(num_frames - 1, temporal_compression)
    return 1 + (k + (1 if rest and policy == "pad" else 0)) * temporal_compression


def format_video_shape(x: torch.Tensor, temporal_compression: int, spatial_compression: int,
                       policy: str = "trim", name: str = "video") -> torch.Tensor:
    """Make [B,C,T,H,W] encodable: T -> 1+k*tc (trim the tail, or pad by repeating the last frame),
    H, W -> multiples of the spatial compression (cropped at the bottom/right). Warns when it changes x."""
    t, h, w = x.shape[2:]
    new_t = fit_num_frames(t, temporal_compression, policy)
    new_h, new_w = h - h % spatial_compression, w - w % spatial_compression
    if new_h == 0 or new_w == 0:
        raise KinemaError(f"{name} is {h}x{w} px; the VAE needs at least {spatial_compression}x{spatial_compression}")
    if new_t != t:
        verb = "trimmed" if new_t < t else "padded (last frame repeated)"
        warnings.warn(f"{name}: {t} frames is not 1+{temporal_compression}k; {verb} to {new_t} frames",
                      stacklevel=2)
        if new_t < t:
            x = x[:, :, :new_t]
        else:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, new_t - t, -1, -1)], dim=2)
    if (new_h, new_w) != (h, w):
        warnings.warn(f"{name}: {h}x{w} px is not a multiple of {spatial_compression}; cropped to {new_h}x{new_w}",
                      stacklevel=2)
        x = x[:, :, :, :new_h, :new_w]
    return x


class VideoVAEMixin:
    """encode_video / decode_video on top of a model's encode(x).latent_dist and decode(z).sample."""

    @property
    def scaling_factor(self) -> float:
        return float(self.config.scaling_factor)

    def _latent_stats(self, z: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """Per-channel (mean, std) from the config's latents_mean / latents_std (diffusers' convention for
        VAEs whose channels differ in offset and spread); (0, 1) when the config has none."""
        mean, std = getattr(self.config, "latents_mean", None), getattr(self.config, "latents_std", None)
        shape = (1, -1) + (1,) * (z.ndim - 2)
        mean = 0.0 if mean is None else torch.tensor(mean, dtype=z.dtype, device=z.device).view(shape)
        std = 1.0 if std is None else torch.tensor(std, dtype=z.dtype, device=z.device).view(shape)
        return mean, std

    def encode_video(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None,
                     frame_policy: str = "trim") -> torch.Tensor:
        """x [B,3,T,H,W] in [-1,1] -> scaled latents ((z - latents_mean) / latents_std * scaling_factor).
        A frame count that is not 1+k*tc is trimmed (or padded, frame_policy="pad") with a warning;
        sample=False takes the posterior mode."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise KinemaError(f"encode_video expects [B,3,T,H,W] in [-1,1], got shape {tuple(x.shape)}")
        x = format_video_shape(x, self.temporal_compression, self.spatial_compression, frame_policy)
        posterior = self.encode(x).latent_dist
        z = posterior.sample(generator) if sample else posterior.mode()
        mean, std = self._latent_stats(z)
        return (z - mean) / std * self.scaling_factor

    def decode_video(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B,C,t,h,w] -> video [B,3,T',H,W] in about [-1,1]."""
        mean, std = self._latent_stats(z)
        return self.decode(z / self.scaling_factor * std + mean).sample

    def reconstruct(self, x: torch.Tensor, sample: bool = False, frame_policy: str = "trim") -> torch.Tensor:
        """encode_video then decode_video, returning a video of the (formatted) input's shape."""
        x = format_video_shape(x, self.temporal_compression, self.spatial_compression, frame_policy)
        return self.decode_video(self.encode_video(x, sample=sample))


def interpolate_frames(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize every frame of [B,C,T,H,W] (bilinear, antialiased)."""
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
    return frames.reshape(b, t, c, *size).permute(0, 2, 1, 3, 4)
