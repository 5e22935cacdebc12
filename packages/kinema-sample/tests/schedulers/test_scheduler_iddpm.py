import math

import numpy as np
import pytest
import torch
from scheduler_toy import alphas_cumprod_1000, oracle_pipeline, sample

from kinema.sample.schedulers import IDDPMScheduler
from kinema.sample.schedulers.iddpm import linear_betas


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


def test_sampler_visits_upstreams_respaced_timesteps():
    """Open-Sora's IDDPM "100" respacing keeps round(i * 999 / 99); diffusers' linspace spacing is the same."""
    sampler = IDDPMScheduler().sampler()
    sampler.set_timesteps(100)
    kept = sorted(sampler.timesteps.tolist())
    assert kept[:12] == [0, 10, 20, 30, 40, 50, 61, 71, 81, 91, 101, 111]
    assert kept[-3:] == [979, 989, 999]
    assert kept == [round(i * 999 / 99) for i in range(100)]
    assert sampler.config.variance_type == "learned_range" and not sampler.config.clip_sample


def test_one_sampler_step_is_the_respaced_posterior_with_learned_variance():
    """diffusers' DDPM step on the respaced chain = IDDPM's p(x_prev | x_t) written from the formulas."""
    sampler = IDDPMScheduler().sampler()
    sampler.set_timesteps(10)
    t, t_prev = sampler.timesteps[3].item(), sampler.timesteps[4].item()
    ac = alphas_cumprod_1000()
    a_t, a_prev = ac[t].item(), ac[t_prev].item()
    beta = 1 - a_t / a_prev  # the respaced chain's beta for this step
    x, eps = _video(b=1, seed=21), _video(b=1, seed=22)
    v = torch.full_like(eps, 0.3)
    noise = _video(b=1, seed=23)
    x0 = (x.double() - math.sqrt(1 - a_t) * eps.double()) / math.sqrt(a_t)
    mean = math.sqrt(a_prev) * beta / (1 - a_t) * x0 + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t) * x.double()
    posterior = beta * (1 - a_prev) / (1 - a_t)
    frac = (0.3 + 1) / 2
    std = math.exp(0.5 * (frac * math.log(beta) + (1 - frac) * math.log(posterior)))
    g = torch.Generator().manual_seed(5)
    out = sampler.step(torch.cat([eps, v], dim=1), sampler.timesteps[3], x, generator=g).prev_sample
    drawn = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out.double(), mean + std * drawn.double(), rtol=1e-5, atol=1e-5)
    assert noise.shape == out.shape


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

    def forward(self, x, t, frame_mask=None):
        self.seen = {"frame_mask": frame_mask}
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

    def fn(x, t, frame_mask):
        seen_inputs.append(x)
        return model(x, t, frame_mask)

    out = s.training_losses(fn, x0, t, mask=mask, noise=eps)
    assert torch.equal(model.seen["frame_mask"], mask)
    x_in = seen_inputs[0]
    torch.testing.assert_close(x_in[0, :, 1], s.add_noise(x0, eps, torch.tensor([0, 0]))[0, :, 1])
    torch.testing.assert_close(x_in[0, :, 0], s.add_noise(x0, eps, t)[0, :, 0])
    # the loss only averages trained frames: an arbitrary prediction on a given frame changes nothing
    def corrupt_given(x, t, frame_mask):
        o = model(x, t, frame_mask)
        return torch.where(~mask[:, None, :, None, None], o + 5.0, o)

    out2 = s.training_losses(corrupt_given, x0, t, mask=mask, noise=eps)
    torch.testing.assert_close(out["mse"], out2["mse"])
    manual = ((eps - 0.5 * x_in) ** 2)[0][:, [0, 2]].mean()
    assert out["mse"][0].item() == pytest.approx(manual.item(), rel=1e-5)


# ---------------------------------------------------------------- sampling through the pipeline's loop


def _zero_eps(x, t):
    return torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])


def test_masked_sampling_holds_reference_frames():
    pipe = oracle_pipeline(_zero_eps, IDDPMScheduler().sampler())
    ref = _video(b=1, t=4, seed=11)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    out = sample(pipe, ref.clone(), 10, generator=torch.Generator().manual_seed(0), frame_mask=mask)
    seen = pipe.transformer.seen
    assert len(seen) == 10 and all(s["x_mask"].tolist() == [[False, True, True, True]] for s in seen)
    for s in seen:  # the model always sees the clean reference in the held frame
        torch.testing.assert_close(s["x"][:, :, 0], ref[:, :, 0])
    torch.testing.assert_close(out[:, :, 0], ref[:, :, 0])  # and it comes out unchanged
    assert (out[:, :, 1:] - ref[:, :, 1:]).abs().mean() > 0.1


def test_edit_ratio_starts_the_frame_below_its_noise_level():
    pipe = oracle_pipeline(_zero_eps, IDDPMScheduler().sampler())
    ref = _video(b=1, t=2, seed=12)
    sample(pipe, ref.clone(), 10, frame_mask=torch.tensor([[0.4, 1.0]]))
    levels = [s["t"][0].item() / 1000 for s in pipe.transformer.seen]
    active = [s["x_mask"][0, 0].item() for s in pipe.transformer.seen]
    assert active == [level < 0.4 for level in levels] and 0 < sum(active) < 10
    first = active.index(True)  # re-noised to its level when it starts: no longer the clean reference
    assert not torch.allclose(pipe.transformer.seen[first]["x"][:, :, 0], ref[:, :, 0])
