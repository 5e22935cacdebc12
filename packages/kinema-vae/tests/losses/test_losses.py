import pytest
import torch

from kinema.core import KinemaError
from kinema.vae.distribution import DiagonalGaussianDistribution
from kinema.vae.losses import (
    LPIPS,
    NLayerDiscriminator,
    NLayerDiscriminator3D,
    PerceptualWeightsMissing,
    VAELoss,
    build_perceptual_loss,
    hinge_d_loss,
)


def _posterior(b=2):
    return DiagonalGaussianDistribution(torch.randn(b, 8, 2, 4, 4))


def test_generator_loss_matches_the_dense_formula():
    torch.manual_seed(0)
    x, x_hat = torch.rand(2, 3, 5, 8, 8), torch.rand(2, 3, 5, 8, 8)
    post = _posterior()
    for kind, rec in (("l1", (x - x_hat).abs()), ("l2", (x - x_hat) ** 2)):
        loss_fn = VAELoss(kl_weight=1e-3, logvar_init=0.5, reconstruction=kind, discriminator=None)
        loss, log = loss_fn(x, x_hat, post)
        nll = (rec / torch.exp(torch.tensor(0.5)) + 0.5).sum() / (2 * 5)
        kl = (0.5 * (post.mean**2 + post.var - 1 - post.logvar)).sum() / 2
        assert loss.item() == pytest.approx((nll + 1e-3 * kl).item(), rel=1e-5)
        assert log["kl_loss"].item() == pytest.approx(kl.item(), rel=1e-5)


def test_hinge_loss_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1-real) = [0, 0.5] -> 0.25 ; relu(1+fake) = [0, 1] -> 0.5
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))


def test_gan_starts_at_disc_start_with_adaptive_weight():
    torch.manual_seed(0)
    last = torch.nn.Parameter(torch.randn(3, 3, 1, 1, 1))
    x = torch.rand(1, 3, 9, 32, 32)
    x_hat = torch.nn.functional.conv3d(x, last)  # depends on `last`, like a decoder output
    loss_fn = VAELoss(discriminator="3d", disc_start=10, disc_layers=2, disc_channels=8)
    before, log_before = loss_fn(x, x_hat, _posterior(1), 0, global_step=9, last_layer=last)
    assert "g_loss" not in log_before
    d0, _ = loss_fn(x, x_hat, _posterior(1), 1, global_step=9)
    assert d0.item() == 0.0
    after, log = loss_fn(x, x_hat, _posterior(1), 0, global_step=10, last_layer=last)
    assert "g_loss" in log and 0 <= log["d_weight"].item() <= 0.5 * 1e4
    d1, dlog = loss_fn(x, x_hat, _posterior(1), 1, global_step=10)
    assert d1.item() > 0 and "logits_real" in dlog
    d1.backward()
    assert loss_fn.discriminator.main[0].weight.grad is not None


def test_discriminator_shapes():
    d3 = NLayerDiscriminator3D(3, 8, n_layers=2)
    assert d3(torch.rand(1, 3, 9, 32, 32)).shape[1] == 1
    d2 = NLayerDiscriminator(3, 8, n_layers=3)
    assert d2(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    with pytest.raises(KinemaError, match="discriminator"):
        VAELoss(discriminator="4d")


def test_lpips_without_weights_says_what_to_pass():
    with pytest.raises(PerceptualWeightsMissing, match="--lpips-backbone"):
        build_perceptual_loss("lpips-vgg")
    with pytest.raises(KinemaError, match="available: lpips-alex, lpips-vgg"):
        build_perceptual_loss("nope")


def test_lpips_loads_user_weights_in_torchvision_and_lpips_layouts(tmp_path):
    torch.manual_seed(0)
    donor = LPIPS("alex", require_weights=False)
    for k in range(5):
        torch.nn.init.uniform_(getattr(donor, f"lin{k}").model[1].weight, 0, 0.1)
    sd = donor.state_dict()
    backbone = {f"{k}": v for k, v in sd.items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision files carry a classifier
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, tmp_path / "alex.pth")
    lp = build_perceptual_loss("lpips-alex", backbone=tmp_path / "alexnet.pth", linear=tmp_path / "alex.pth")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert lp(x, x).abs().max() < 1e-6
    far, near = lp(x, -x), lp(x, (x + 0.05 * torch.randn_like(x)).clamp(-1, 1))
    assert (far > near).all() and far.shape == (2, 1, 1, 1)
    assert torch.allclose(lp(x, -x), donor(x, -x))
    with pytest.raises(PerceptualWeightsMissing, match="incomplete"):
        LPIPS("alex", backbone=tmp_path / "alexnet.pth")
