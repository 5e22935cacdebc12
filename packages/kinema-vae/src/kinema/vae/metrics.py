"""Reconstruction metrics per frame, as the Open-Sora-Plan 1.0 evaluation computes them.

Videos are [T,3,H,W] (or [B,T,3,H,W]) float in [0,1].
  PSNR: per frame, MSE over [0,1] pixels, 20*log10(1/sqrt(mse)); 100 when mse < 1e-10.
  SSIM: per frame and RGB channel in float64, 11x11 Gaussian window (sigma 1.5), valid region only
        (the [5:-5] crop of a same-size filter), C1 = 0.01^2, C2 = 0.03^2; map mean, then channel mean
        (Wang et al. 2004).
  LPIPS: AlexNet v0.1 (needs user weights, see losses.perceptual), inputs mapped to [-1,1].

``psnr(a, b)`` and ``ssim(a, b)`` are the plain entry points (one number for a whole batch of frames or
videos, e.g. from a training loop); the ``*_per_frame`` functions give the per-frame values behind the tables.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kinema.core import KinemaError


def _frames(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 5:
        return x.reshape(-1, *x.shape[2:])
    if x.ndim != 4 or x.shape[1] != 3:
        raise KinemaError(f"metrics expect frames [T,3,H,W] or [B,T,3,H,W] in [0,1], got shape {tuple(x.shape)}")
    return x


def psnr_per_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _frames(x).double(), _frames(y).double()
    mse = (x - y).pow(2).flatten(1).mean(1)
    out = 20 * torch.log10(1.0 / mse.clamp_min(1e-30).sqrt())
    return torch.where(mse < 1e-10, torch.full_like(out, 100.0), out)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def _ssim_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM map of each plane of [N,H,W] (float64): the per-channel, per-frame SSIM."""
    if x.shape[-1] < 11 or x.shape[-2] < 11:
        raise KinemaError(f"SSIM needs frames of at least 11x11 px, got {tuple(x.shape[-2:])}")
    x, y = x.double()[:, None], y.double()[:, None]
    window = gaussian_window().to(x.device)[None, None]
    filt = lambda t: F.conv2d(t, window)  # valid region == the [5:-5] crop of a same-size filter
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def ssim_per_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _frames(x), _frames(y)
    t, c, h, w = x.shape
    return _ssim_planes(x.reshape(t * c, h, w), y.reshape(t * c, h, w)).view(t, c).mean(dim=1)


def _channel_dim(x: torch.Tensor, channel_dim: int | None) -> int:
    if channel_dim is not None:
        if not -x.ndim <= channel_dim < x.ndim or x.shape[channel_dim] != 3 or x.ndim < 3:
            raise KinemaError(f"channel_dim={channel_dim} is not an RGB dimension of shape {tuple(x.shape)}")
        return channel_dim % x.ndim
    for dim in (-3, -4):  # [.., 3, H, W] first, then [.., 3, T, H, W]
        if x.ndim >= -dim and x.shape[dim] == 3:
            return dim % x.ndim
    raise KinemaError(f"expected frames [..,3,H,W] or videos [..,3,T,H,W] in [0,1], got shape {tuple(x.shape)}")


def _as_frames(a: torch.Tensor, b: torch.Tensor, channel_dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise KinemaError(f"{tuple(a.shape)} and {tuple(b.shape)} differ in shape; metrics compare equal shapes")
    dim = _channel_dim(a, channel_dim)
    to_frames = lambda t: t.movedim(dim, -3).reshape(-1, 3, *t.shape[-2:])
    return to_frames(a), to_frames(b)


def psnr(a: torch.Tensor, b: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """Mean per-frame PSNR (dB) of two equal-shape tensors in [0,1], as a 0-dim float64 tensor.

    Shapes: frames [..,3,H,W] (e.g. [T,3,H,W], [B,T,3,H,W]) or videos [..,3,T,H,W] (e.g. [3,T,H,W],
    [B,3,T,H,W]). The RGB dimension is dim -3 when it has size 3, else dim -4; a shape where both have
    size 3 (such as [3,3,H,W]) is read as frames unless channel_dim says otherwise."""
    x, y = _as_frames(a, b, channel_dim)
    return psnr_per_frame(x, y).mean()


def ssim(a: torch.Tensor, b: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """Mean SSIM of two equal-shape tensors in [0,1], as a 0-dim float64 tensor: Gaussian window 11,
    sigma 1.5, C1=0.01^2, C2=0.03^2, per channel and frame over the valid region, averaged over channels
    and frames. Shapes as for :func:`psnr`; every frame and channel weighs the same, so the layout only
    has to be told apart to check that there are 3 channels."""
    x, y = _as_frames(a, b, channel_dim)
    h, w = x.shape[-2:]
    return _ssim_planes(x.reshape(-1, h, w), y.reshape(-1, h, w)).mean()


@torch.no_grad()
def lpips_per_frame(x: torch.Tensor, y: torch.Tensor, lpips) -> torch.Tensor:
    x, y = _frames(x).float(), _frames(y).float()
    return lpips(x * 2 - 1, y * 2 - 1).flatten()


def video_metrics(real: torch.Tensor, recon: torch.Tensor, lpips=None) -> dict[str, float]:
    """Mean over frames of each metric, for one clip [T,3,H,W] in [0,1]."""
    if real.shape != recon.shape:
        raise KinemaError(f"real {tuple(real.shape)} and reconstruction {tuple(recon.shape)} differ in shape")
    out = {"psnr": psnr_per_frame(real, recon).mean().item(), "ssim": ssim_per_frame(real, recon).mean().item()}
    if lpips is not None:
        out["lpips"] = lpips_per_frame(real, recon, lpips).mean().item()
    return out


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """A fixed-width table: one row per clip, then the mean."""
    if not rows:
        return "(no clips)"
    keys = list(rows[0][1])
    width = max(8, *(len(name) for name, _ in rows))
    lines = [f"{'clip':<{width}}  " + "  ".join(f"{k:>8}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{m[k]:8.4f}" for k in keys))
    mean = {k: sum(m[k] for _, m in rows) / len(rows) for k in keys}
    lines.append(f"{'mean':<{width}}  " + "  ".join(f"{mean[k]:8.4f}" for k in keys))
    return "\n".join(lines)

