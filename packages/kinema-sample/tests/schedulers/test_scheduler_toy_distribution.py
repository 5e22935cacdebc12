"""The pipeline's one denoising loop, driving diffusers' schedulers with the exact optimal denoiser of a 1-D
mixture, reproduces the mixture's mean, std and mode weights: the loop, the scheduler configs and the model's
prediction conventions (epsilon with a learned variance, Open-Sora's rectified-flow velocity) fit together."""

import pytest
import torch
from scheduler_toy import eps_oracle, mixture_mean_std, oracle_pipeline, sample, velocity_oracle

from kinema.sample.schedulers import IDDPMScheduler, RectifiedFlowScheduler, epsilon_sampler

N = 20000


def _stats(samples):
    x = samples.flatten().double()
    return x.mean().item(), x.std().item()


CASES = [
    ("iddpm", lambda: IDDPMScheduler().sampler(), eps_oracle(learned_variance=True), 100, "epsilon"),
    ("ddim", lambda: epsilon_sampler("ddim"), eps_oracle(learned_variance=False), 50, "epsilon"),
    ("dpm-solver++", lambda: epsilon_sampler("dpm-solver"), eps_oracle(learned_variance=False), 20, "epsilon"),
    ("pndm", lambda: epsilon_sampler("pndm"), eps_oracle(learned_variance=False), 50, "epsilon"),
    ("euler", lambda: epsilon_sampler("euler"), eps_oracle(learned_variance=False), 50, "epsilon"),
    ("euler-a", lambda: epsilon_sampler("euler-a"), eps_oracle(learned_variance=False), 100, "epsilon"),
    ("heun", lambda: epsilon_sampler("heun"), eps_oracle(learned_variance=False), 25, "epsilon"),
    ("unipc", lambda: epsilon_sampler("unipc"), eps_oracle(learned_variance=False), 20, "epsilon"),
    ("rflow", lambda: RectifiedFlowScheduler().sampler(), velocity_oracle, 50, "flow"),
]


@pytest.mark.parametrize("make_scheduler, model_fn, steps, prediction", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_samples_match_target_distribution(make_scheduler, model_fn, steps, prediction):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, 1, 1, 1, 1, generator=g)
    x = sample(oracle_pipeline(model_fn, make_scheduler(), prediction), z, steps, generator=g)
    mean, std = _stats(x)
    want_mean, want_std = mixture_mean_std()
    assert abs(mean - want_mean) < 0.05, (mean, want_mean)
    assert abs(std - want_std) < 0.05, (std, want_std)
    # the mixture is bimodal: the fraction below the valley must match the left weight (0.3)
    assert abs((x < -0.4).double().mean().item() - 0.3) < 0.02


def test_wrong_denoiser_is_detected():
    """The check above can fail: a denoiser of a different distribution gives different stats."""
    def shifted(x, t):
        return velocity_oracle(x - 0.5, t)

    g = torch.Generator().manual_seed(0)
    pipe = oracle_pipeline(shifted, RectifiedFlowScheduler().sampler(), "flow")
    x = sample(pipe, torch.randn(N, 1, 1, 1, 1, generator=g), 50)
    assert abs(_stats(x)[0] - mixture_mean_std()[0]) > 0.1
