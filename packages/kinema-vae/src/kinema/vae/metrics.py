"""Reconstruction metrics per frame, as the Open-Sora-Plan 1.0 evaluation computes them.

Videos are [T,3,H,W] (or [B,T,3,H,W]) float in [0,1].
  PSNR: per frame, MSE over [0,1] pixels, 20*log10(1/sqrt(mse)); 100 when mse < 1e-10.
  SSIM: per frame and RGB channel in float64, 11x11 Gaussian window (sigma 1.5), valid region only
        (the [5:-5] crop of a same-size filter), C1 = 0.01^2, C2 = 0.03^2; map mean, then channel mean.
  LPIPS: AlexNet v0.1 (needs user weights, see losses.perceptual), inputs mapped to [-1,1].
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


def ssim_per_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = _frames(x).double(), _frames(y).double()
    if x.shape[-1] < 11 or x.shape[-2] < 11:
        raise KinemaError(f"SSIM needs frames of at least 11x11 px, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    window = gaussian_window().to(x.device).expand(c, 1, 11, 11)
    filt = lambda t: F.conv2d(t, window, groups=c)  # valid region == the [5:-5] crop of a same-size filter
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


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

