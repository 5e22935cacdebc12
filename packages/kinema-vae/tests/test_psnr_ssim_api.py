"""psnr(a, b) / ssim(a, b): the plain API other code (the trainer) calls, against direct formulas."""

import math

import pytest
import torch

from kinema.core import KinemaError
from kinema.vae.metrics import gaussian_window, psnr, ssim


def _dense_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Wang et al. 2004 written out window by window: frames [T,3,H,W], every valid 11x11 position,
    Gaussian-weighted means, variances and covariance; mean over positions, then channels, then frames."""
    w = gaussian_window(11, 1.5)
    c1, c2 = 0.01**2, 0.03**2
    per_frame = []
    for t in range(x.shape[0]):
        per_channel = []
        for c in range(x.shape[1]):
            values = []
            for i in range(x.shape[2] - 10):
                for j in range(x.shape[3] - 10):
                    a, b = x[t, c, i : i + 11, j : j + 11], y[t, c, i : i + 11, j : j + 11]
                    ma, mb = (w * a).sum(), (w * b).sum()
                    va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                    cov = (w * (a - ma) * (b - mb)).sum()
                    values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
            per_channel.append(sum(values) / len(values))
        per_frame.append(sum(per_channel) / len(per_channel))
    return float(sum(per_frame) / len(per_frame))


def _pair(shape, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    return x, (x + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)


def test_ssim_matches_the_dense_window_by_window_formula():
    x, y = _pair((2, 3, 13, 12), 0.1)
    assert ssim(x, y).item() == pytest.approx(_dense_ssim(x, y), rel=1e-9)
    # the same frames as a video [3,T,H,W] and as a batch [B,3,T,H,W]
    video_x, video_y = x.permute(1, 0, 2, 3), y.permute(1, 0, 2, 3)
    assert ssim(video_x, video_y).item() == pytest.approx(_dense_ssim(x, y), rel=1e-9)
    assert ssim(video_x[None], video_y[None]).item() == pytest.approx(_dense_ssim(x, y), rel=1e-9)


def test_ssim_properties():
    x, y = _pair((3, 3, 24, 24), 0.05, seed=1)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-12)
    scores = [ssim(*_pair((3, 3, 24, 24), s, seed=1)).item() for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2] and scores[0] < 1
    assert ssim(x.float(), y.float()).dtype == torch.float64 and ssim(x, y).ndim == 0


def test_psnr_is_the_mean_of_per_frame_psnr_in_either_layout():
    x, y = _pair((4, 3, 16, 16), 0.05, seed=2)
    direct = sum(10 * math.log10(1 / (x[t] - y[t]).pow(2).mean().item()) for t in range(4)) / 4
    assert psnr(x, y).item() == pytest.approx(direct, rel=1e-9)
    assert psnr(x.permute(1, 0, 2, 3), y.permute(1, 0, 2, 3)).item() == pytest.approx(direct, rel=1e-9)
    assert psnr(x, x).item() == 100.0
    # [3,3,H,W] reads as 3 frames of RGB unless told the RGB dim is 0 (a 3-frame video)
    a, b = _pair((3, 3, 16, 16), 0.05, seed=3)
    as_video = sum(10 * math.log10(1 / (a[:, t] - b[:, t]).pow(2).mean().item()) for t in range(3)) / 3
    assert psnr(a, b, channel_dim=0).item() == pytest.approx(as_video, rel=1e-9)
    assert psnr(a, b).item() == pytest.approx(psnr(a.transpose(0, 1), b.transpose(0, 1), channel_dim=0).item())


def test_bad_shapes_are_refused_with_the_shape():
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(KinemaError, match="differ in shape"):
        psnr(x, x[:1])
    with pytest.raises(KinemaError, match=r"\(2, 4, 16, 16\)"):
        ssim(torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16))
    with pytest.raises(KinemaError, match="channel_dim=1"):
        psnr(torch.rand(3, 5, 16, 16), torch.rand(3, 5, 16, 16), channel_dim=1)
    with pytest.raises(KinemaError, match="at least 11x11"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
