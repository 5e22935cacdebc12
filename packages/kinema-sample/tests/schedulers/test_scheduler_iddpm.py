import math

import numpy as np
import pytest
import torch
from scheduler_toy import alphas_cumprod_1000

from kinema.sample.schedulers import Guidance, IDDPMScheduler, space_timesteps
from kinema.sample.schedulers.iddpm import DiffusionTables, linear_betas, respaced_betas


def _video(b=2, c=4, t=3, h=2, w=2, seed=0):
    return torch.randn(b, c, t, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- closed forms


def test_add_noise_and_target_match_closed_form():
    s = IDDPMScheduler()
    x0, eps = _video(seed=1), _video(seed=2)
    t = torch.tensor([0, 999])
    abar = alphas_cumprod_1000()[t].float().reshape(-1, 1, 1, 1, 1)
    torch.testing.assert_close(s.add_noise(x0, eps, t), abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
    torch.testing.assert_close(s.training_target(x0, eps, t), eps)


def test_linear_betas_are_open_soras():
    betas = linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert betas.dtype == torch.float64


def test_respacing_to_100_steps_gives_upstream_timesteps():
    kept = space_timesteps(1000, "100")
    assert len(kept) == 100
    assert kept[:12] == [0, 10, 20, 30, 40, 50, 61, 71, 81, 91, 101, 111]
    assert kept[-3:] == [979, 989, 999]
    assert kept == [round(i * 999 / 99) for i in range(100)]
    assert IDDPMScheduler().inference_timesteps(100) == kept


def test_respacing_variants():
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(1000, "250")[:4] == [0, 4, 8, 12]
    assert len(space_timesteps(10, "2,3")) == 5
    with pytest.raises(ValueError, match="cannot take"):
        space_timesteps(10, "20")


def test_respaced_chain_keeps_alpha_bar_at_kept_steps():
    betas = linear_betas(1000)
    kept = space_timesteps(1000, "25")
    respaced = DiffusionTables(respaced_betas(betas, kept)).alphas_cumprod
    torch.testing.assert_close(respaced, torch.cumprod(1 - betas, 0)[kept])


# ---------------------------------------------------------------- hybrid loss


def _reference_posterior(x0, xt, t):
    """q(x_{t-1} | x_t, x_0) from the textbook formulas (numpy float64)."""
    betas = np.linspace(1e-4, 0.02, 1000)
    ac = np.cumprod(1 - betas)
    ac_prev = np.append(1.0, ac[:-1])
    b, a, ap = betas[t], ac[t], ac_prev[t]
    mean = np.sqrt(ap) * b / (1 - a) * x0 + np.sqrt(1 - b) * (1 - ap) / (1 - a) * xt
    var = b * (1 - ap) / (1 - a)
    return mean, var, b


def test_variational_bound_is_the_gaussian_kl_in_bits():
    s = IDDPMScheduler()
    x0, eps = _video(b=1, seed=3), _video(b=1, seed=4)
    t = torch.tensor([500])
    xt = s.add_noise(x0, eps, t)
    eps_hat, v = _video(b=1, seed=5) * 0.1 + eps, torch.full_like(x0, 0.3)
    vb = s.vb_terms_bpd(eps_hat, v, x0, xt, t)

    true_mean, true_var, beta = _reference_posterior(x0.double().numpy(), xt.double().numpy(), 500)
    ac = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[500]
    x0_hat = (xt.double().numpy() - np.sqrt(1 - ac) * eps_hat.double().numpy()) / np.sqrt(ac)
    model_mean, _, _ = _reference_posterior(x0_hat, xt.double().numpy(), 500)
    model_var = np.exp(0.65 * np.log(beta) + 0.35 * np.log(true_var))  # frac = (0.3 + 1) / 2
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(torch.from_numpy(true_mean), math.sqrt(true_var)),
        torch.distributions.Normal(torch.from_numpy(model_mean), math.sqrt(model_var)),
    )
    assert vb.item() == pytest.approx(kl.mean().item() / math.log(2), rel=1e-3)


def test_decoder_nll_at_t0():
    s = IDDPMScheduler()
    x0 = _video(b=1, seed=6).clamp(-0.9, 0.9)
    t = torch.tensor([0])
    xt = s.add_noise(x0, torch.zeros_like(x0), t)
    eps_hat, v = torch.zeros_like(x0), torch.zeros_like(x0)
    vb = s.vb_terms_bpd(eps_hat, v, x0, xt, t)
    mean, log_var, _ = s.train_tables.p_mean_variance(eps_hat, v, xt, t)
    normal = torch.distributions.Normal(mean.double(), (0.5 * log_var.double()).exp())
    prob = normal.cdf(x0.double() + 1 / 255) - normal.cdf(x0.double() - 1 / 255)
    assert vb.item() == pytest.approx((-prob.log().mean() / math.log(2)).item(), rel=2e-3)


class _Linear(torch.nn.Module):
    """Predicts eps and v from x with separate parameters, to see which head gets which gradient."""

    def __init__(self):
        super().__init__()
        self.eps_scale = torch.nn.Parameter(torch.tensor(0.5))
        self.v_scale = torch.nn.Parameter(torch.tensor(0.1))
        self.seen = {}

    def forward(self, x, t, **kwargs):
        self.seen = kwargs
        return torch.cat([self.eps_scale * x, torch.tanh(self.v_scale * x)], dim=1)


def test_hybrid_loss_is_mse_plus_vb_and_vb_only_trains_the_variance():
    s, model = IDDPMScheduler(), _Linear()
    x0, eps, t = _video(seed=7), _video(seed=8), torch.tensor([10, 700])
    out = s.training_losses(model, x0, t, noise=eps)
    xt = s.add_noise(x0, eps, t)
    torch.testing.assert_close(out["mse"], ((eps - 0.5 * xt) ** 2).mean(dim=(1, 2, 3, 4)))
    torch.testing.assert_close(out["loss"], out["mse"] + out["vb"])
    out["vb"].sum().backward()
    assert model.eps_scale.grad is None or model.eps_scale.grad.abs().item() == 0
    assert model.v_scale.grad.abs().item() > 0


def test_masked_training_noises_given_frames_at_t0_and_excludes_them():
    s, model = IDDPMScheduler(), _Linear()
    x0, eps, t = _video(seed=9), _video(seed=10), torch.tensor([900, 900])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    seen_inputs = []

    def fn(x, t, **kwargs):
        seen_inputs.append(x)
        return model(x, t, **kwargs)

    out = s.training_losses(fn, x0, t, mask=mask, noise=eps)
    assert torch.equal(model.seen["x_mask"], mask)
    x_in = seen_inputs[0]
    torch.testing.assert_close(x_in[0, :, 1], s.add_noise(x0, eps, torch.tensor([0, 0]))[0, :, 1])
    torch.testing.assert_close(x_in[0, :, 0], s.add_noise(x0, eps, t)[0, :, 0])
    # the loss only averages trained frames: an arbitrary prediction on a given frame changes nothing
    def corrupt_given(x, t, **kwargs):
        o = model(x, t, **kwargs)
        return torch.where(~mask[:, None, :, None, None], o + 5.0, o)

    out2 = s.training_losses(corrupt_given, x0, t, mask=mask, noise=eps)
    torch.testing.assert_close(out["mse"], out2["mse"])
    manual = ((eps - 0.5 * x_in) ** 2)[0][:, [0, 2]].mean()
    assert out["mse"][0].item() == pytest.approx(manual.item(), rel=1e-5)


# ---------------------------------------------------------------- sampling


def test_masked_sampling_holds_reference_frames():
    s = IDDPMScheduler()
    ref = _video(b=1, t=4, seed=11)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    masks_seen, frame0_seen = [], []

    def model(x, t, x_mask=None, **_):
        masks_seen.append(x_mask.clone())
        frame0_seen.append(x[:, :, 0].clone())
        return torch.zeros(x.shape[0], 8, *x.shape[2:])

    out = s.sample(model, ref.clone(), mask=mask, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
    assert all(m.tolist() == [[False, True, True, True]] for m in masks_seen)
    for seen in frame0_seen[:-1]:  # held exactly at the reference ...
        torch.testing.assert_close(seen, ref[:, :, 0])
    # ... and at the last step re-noised at the t=0 level, then denoised once: stays close
    assert (out[:, :, 0] - ref[:, :, 0]).abs().max() < 0.05
    assert (out[:, :, 1:] - ref[:, :, 1:]).abs().mean() > 0.1


def test_edit_ratio_starts_the_frame_at_its_step():
    s = IDDPMScheduler()
    ref = _video(b=1, t=2, seed=12)
    masks_seen = []

    def model(x, t, x_mask=None, **_):
        masks_seen.append(x_mask[0, 0].item())
        return torch.zeros(x.shape[0], 8, *x.shape[2:])

    s.sample(model, ref.clone(), mask=torch.tensor([[0.4, 1.0]]), num_inference_steps=10)
    # respaced steps 9..0; frame 0 starts at step int(0.4 * 10) = 4 and is denoised below it
    assert masks_seen == [False] * 6 + [True] * 4


def test_cfg_guides_only_the_first_cfg_channel_channels():
    s = IDDPMScheduler(cfg_channel=3)
    calls = []

    def model(x, t, y=None, **_):
        calls.append(x.shape[0])
        # output depends on y: cond rows get +1 on every channel
        return torch.cat([x, x], dim=1) + y.reshape(-1, 1, 1, 1, 1)

    fn = s.guided_model(model, Guidance(scale=7.0, uncond_kwargs={"y": torch.zeros(2)}), channels=4)
    x = _video(seed=13)
    out = fn(x, torch.tensor([5, 5]), y=torch.ones(2))
    assert calls == [4]  # one batched call for both branches
    base = torch.cat([x, x], dim=1)
    torch.testing.assert_close(out[:, :3], base[:, :3] + 7.0)  # u + 7 (c - u) = base + 7
    torch.testing.assert_close(out[:, 3:], base[:, 3:] + 1.0)  # conditional branch, unguided
