"""A 1-D two-Gaussian mixture and its exact optimal denoisers (closed form)."""

from __future__ import annotations

import numpy as np
import torch

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([-1.5, 1.0])
STDS = np.array([0.4, 0.6])


def mixture_mean_std() -> tuple[float, float]:
    mean = float((WEIGHTS * MEANS).sum())
    second = float((WEIGHTS * (STDS**2 + MEANS**2)).sum())
    return mean, float(np.sqrt(second - mean**2))


def posterior_x0(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t = a x0 + s eps] for the mixture (all float64)."""
    x, a, s = x.double(), a.double(), s.double()
    log_resp, cond_means = [], []
    for w, m, sd in zip(WEIGHTS, MEANS, STDS):
        var = a**2 * sd**2 + s**2
        log_resp.append(np.log(w) - 0.5 * torch.log(var) - 0.5 * (x - a * m) ** 2 / var)
        cond_means.append(m + a * sd**2 / var * (x - a * m))
    resp = torch.softmax(torch.stack(log_resp), dim=0)
    return (resp * torch.stack(cond_means)).sum(0)


def alphas_cumprod_1000() -> torch.Tensor:
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    return torch.from_numpy(np.cumprod(1.0 - betas))


def eps_oracle(learned_variance: bool):
    """model_fn(x, t) returning E[eps | x_t] (and v = -1: the posterior variance) on the 1000-step chain."""
    ac = alphas_cumprod_1000()

    def fn(x, t, **_):
        abar = ac[t.long().cpu()].reshape(-1, *([1] * (x.dim() - 1)))
        a, s = abar.sqrt(), (1 - abar).sqrt()
        eps = (x.double() - a * posterior_x0(x, a, s)) / s
        eps = eps.float()
        return torch.cat([eps, -torch.ones_like(eps)], dim=1) if learned_variance else eps

    return fn


def velocity_oracle(x, t, **_):
    """E[x0 - eps | x_t] for x_t = (1 - s) x0 + s eps, s = t / 1000."""
    s = (t.double().cpu() / 1000).reshape(-1, *([1] * (x.dim() - 1)))
    x0 = posterior_x0(x, 1 - s, s)
    eps = (x.double() - (1 - s) * x0) / s
    return (x0 - eps).float()
