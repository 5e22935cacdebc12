"""Every scheduler, driven by the exact optimal denoiser of a 1-D mixture, reproduces its mean and std."""

import pytest
import torch
from scheduler_toy import eps_oracle, mixture_mean_std, velocity_oracle

from kinema.sample.schedulers import DDIMSampler, DPMSolverSampler, IDDPMScheduler, RectifiedFlowScheduler

N = 20000


def _stats(samples):
    x = samples.flatten().double()
    return x.mean().item(), x.std().item()


@pytest.mark.parametrize(
    "scheduler, model_fn, steps",
    [
        (IDDPMScheduler(), eps_oracle(learned_variance=True), 100),
        (DDIMSampler(), eps_oracle(learned_variance=False), 50),
        (DDIMSampler(eta=1.0), eps_oracle(learned_variance=False), 100),
        (DPMSolverSampler(), eps_oracle(learned_variance=False), 20),
        (RectifiedFlowScheduler(), velocity_oracle, 50),
    ],
    ids=["iddpm-100", "ddim-50", "ddim-eta1-100", "dpm-solver++-20", "rflow-50"],
)
def test_samples_match_target_distribution(scheduler, model_fn, steps):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, 1, 1, 1, 1, generator=g)
    x = scheduler.sample(model_fn, z, num_inference_steps=steps, generator=g)
    mean, std = _stats(x)
    want_mean, want_std = mixture_mean_std()
    assert abs(mean - want_mean) < 0.05, (mean, want_mean)
    assert abs(std - want_std) < 0.05, (std, want_std)
    # the mixture is bimodal: the fraction below the valley must match the left weight (0.3)
    assert abs((x < -0.4).double().mean().item() - 0.3) < 0.02


def test_wrong_denoiser_is_detected():
    """The check above can fail: a denoiser of a different distribution gives different stats."""
    def shifted(x, t, **kw):
        return velocity_oracle(x - 0.5, t)

    g = torch.Generator().manual_seed(0)
    x = RectifiedFlowScheduler().sample(shifted, torch.randn(N, 1, 1, 1, 1, generator=g), num_inference_steps=50)
    assert abs(_stats(x)[0] - mixture_mean_std()[0]) > 0.1
