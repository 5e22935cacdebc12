import math

import pytest
import torch

from kinema.core import KinemaError
from kinema.vae.metrics import format_table, gaussian_window, psnr_per_frame, ssim_per_frame, video_metrics


def test_identical_frames():
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(ssim_per_frame(x, x), torch.ones(3, dtype=torch.float64))
    assert torch.equal(psnr_per_frame(x, x), torch.full((3,), 100.0, dtype=torch.float64))


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_gaussian_noise_of_known_sigma_gives_the_expected_psnr(sigma):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 128, 128, generator=g, dtype=torch.float64)
    y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
    expected = 20 * math.log10(1 / sigma)  # mse = sigma^2
    assert psnr_per_frame(x, y).mean().item() == pytest.approx(expected, abs=0.05)  # SE of the mse ~0.3%


def test_ssim_of_constant_frames_has_the_closed_form():
    # constant a vs b: variances vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.3, 0.6, 0.01**2
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    assert ssim_per_frame(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)


def test_ssim_matches_a_direct_windowed_formula_at_one_position():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 11, 11, generator=g, dtype=torch.float64).expand(1, 3, 11, 11)
    y = (x + 0.1 * torch.randn(1, 1, 11, 11, generator=g, dtype=torch.float64)).expand(1, 3, 11, 11)
    w = gaussian_window()
    mx, my = (w * x[0, 0]).sum(), (w * y[0, 0]).sum()
    vx, vy = (w * x[0, 0] ** 2).sum() - mx**2, (w * y[0, 0] ** 2).sum() - my**2
    cxy = (w * x[0, 0] * y[0, 0]).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ref = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim_per_frame(x, y).item() == pytest.approx(ref.item(), rel=1e-9)
    assert w.sum().item() == pytest.approx(1.0)


def test_noisier_is_worse_and_table_has_a_mean_row():
    x = torch.rand(2, 3, 32, 32)
    a = video_metrics(x, (x + 0.02 * torch.randn_like(x)).clamp(0, 1))
    b = video_metrics(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1))
    assert a["psnr"] > b["psnr"] and a["ssim"] > b["ssim"]
    table = format_table([("a.mp4", a), ("b.mp4", b)])
    lines = table.splitlines()
    assert lines[0].split() == ["clip", "psnr", "ssim"] and lines[-1].startswith("mean")
    assert float(lines[-1].split()[1]) == pytest.approx((a["psnr"] + b["psnr"]) / 2, abs=1e-3)
    with pytest.raises(KinemaError, match="differ in shape"):
        video_metrics(x, x[:1])
