"""IDDPM as Open-Sora 1.0/1.1 and Open-Sora-Plan 1.0 use it.

1000-step linear beta schedule (1e-4 .. 0.02), epsilon prediction with a learned-range variance
(the model returns 2C channels: epsilon and v in [-1, 1]; log sigma^2 interpolates between
log beta_t and the clipped posterior log variance), the hybrid loss MSE + variational bound
(the bound sees a detached epsilon, so only the variance head learns from it) and Open-Sora 1.1's
masked training. Sampling is diffusers' ``DDPMScheduler(variance_type="learned_range")`` on respaced
timesteps (``sampler()``), which computes what upstream's respaced ancestral sampler does.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler
from diffusers.configuration_utils import register_to_config

from .base import ModelFn, TrainingObjective, extract, mean_flat, split_prediction

# --------------------------------------------------------------------------------------------
# Schedules and respacing
# --------------------------------------------------------------------------------------------


def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear betas, scaled so any step count spans the same diffusion as 1000 steps (float64)."""
    scale = 1000 / num_timesteps
    return torch.linspace(beta_start * scale, beta_end * scale, num_timesteps, dtype=torch.float64)


class DiffusionTables:
    """Per-step constants of a Gaussian diffusion chain (float64)."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas
        self.num_timesteps = len(betas)
        alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1).sqrt()
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # posterior variance is 0 at t=0; the log is clipped to the t=1 value
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * alphas.sqrt() / (1.0 - self.alphas_cumprod)

    def q_sample(self, x_start, t, noise):
        return extract(self.sqrt_alphas_cumprod, t, x_start) * x_start + \
            extract(self.sqrt_one_minus_alphas_cumprod, t, x_start) * noise

    def q_posterior(self, x_start, x_t, t):
        mean = extract(self.posterior_mean_coef1, t, x_t) * x_start + extract(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, extract(self.posterior_log_variance_clipped, t, x_t)

    def p_mean_variance(self, eps, v, x_t, t):
        """Model mean and log variance from epsilon and the learned-range interpolation v."""
        min_log = extract(self.posterior_log_variance_clipped, t, x_t)
        max_log = extract(torch.log(self.betas), t, x_t)
        frac = (v.float() + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        x_start = extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - \
            extract(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps.float()
        mean, _ = self.q_posterior(x_start, x_t, t)
        return mean, log_variance, x_start


# --------------------------------------------------------------------------------------------
# Variational bound (in bits per dimension)
# --------------------------------------------------------------------------------------------


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) for data in [-1, 1] quantised to 256 bins, under N(means, e^(2 log_scales))."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


# --------------------------------------------------------------------------------------------
# Scheduler
# --------------------------------------------------------------------------------------------


class IDDPMScheduler(TrainingObjective):
    """Improved DDPM (learned-range variance, hybrid loss, respaced ancestral sampling)."""

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 learn_sigma: bool = True, num_inference_steps: int = 100, cfg_channel: int | None = None):
        self.train_tables = DiffusionTables(linear_betas(num_train_timesteps, beta_start, beta_end))

    # training side ---------------------------------------------------------------------------
    def add_noise(self, x_start, noise, t):
        return self.train_tables.q_sample(x_start, t, noise)

    def training_target(self, x_start, noise, t):
        return noise

    def training_losses(self, model_fn: ModelFn, x_start, t, mask=None, noise=None):
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t, mask = self._noised_input(x_start, noise, t, mask)
        eps, v = split_prediction(model_fn(x_t, t, mask), x_start.shape[1])
        mse = mean_flat((noise - eps.float()) ** 2, mask)
        if not self.config.learn_sigma:
            return {"loss": mse, "mse": mse}
        if v is None:
            raise ValueError("learn_sigma=True needs a model that returns 2C channels (pred_sigma=True)")
        vb = self.vb_terms_bpd(eps.detach(), v, x_start, x_t, t, mask)
        return {"loss": mse + vb, "mse": mse, "vb": vb}

    def vb_terms_bpd(self, eps, v, x_start, x_t, t, mask=None):
        """Variational-bound term per sample: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0,
        the discretised decoder NLL at t = 0; in bits."""
        tables = self.train_tables
        true_mean, true_log_var = tables.q_posterior(x_start.float(), x_t.float(), t)
        mean, log_var, _ = tables.p_mean_variance(eps, v, x_t.float(), t)
        kl = mean_flat(normal_kl(true_mean, true_log_var, mean, log_var), mask) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(x_start.float(), mean, 0.5 * log_var), mask)
        return torch.where(t.to(kl.device) == 0, nll / math.log(2.0), kl)

    # sampling: diffusers' DDPM on the same chain -----------------------------------------------
    def sampler(self) -> DDPMScheduler:
        """Ancestral sampling as Open-Sora's IDDPM does it: evenly spaced respaced steps (``linspace``: upstream's
        "100" spacing), learned-range variance, no clipping of the predicted x_0."""
        c = self.config
        return DDPMScheduler(num_train_timesteps=c.num_train_timesteps, beta_start=c.beta_start,
                             beta_end=c.beta_end, beta_schedule="linear", prediction_type="epsilon",
                             variance_type="learned_range" if c.learn_sigma else "fixed_large",
                             clip_sample=False, timestep_spacing="linspace")
