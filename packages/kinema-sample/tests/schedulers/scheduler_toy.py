"""A 1-D two-Gaussian mixture, its exact optimal denoisers (closed form), and a pipeline that samples with them."""

from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from kinema.dit.contract import ModelContract, VideoModel

from kinema.sample.pipeline import KinemaVideoPipeline

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


def _alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """alpha-bar at (possibly fractional) timesteps, interpolating sigma linearly as diffusers' Euler does."""
    ac = alphas_cumprod_1000().numpy()
    sigma = np.interp(t.double().cpu().numpy(), np.arange(1000), np.sqrt((1 - ac) / ac))
    return torch.from_numpy(1.0 / (1.0 + sigma**2))


def eps_oracle(learned_variance: bool):
    """model_fn(x, t) returning E[eps | x_t] (and v = -1: the posterior variance) on the 1000-step chain."""

    def fn(x, t):
        abar = _alpha_bar(t).reshape(-1, *([1] * (x.dim() - 1)))
        a, s = abar.sqrt(), (1 - abar).sqrt()
        eps = ((x.double() - a * posterior_x0(x, a, s)) / s).float()
        return torch.cat([eps, -torch.ones_like(eps)], dim=1) if learned_variance else eps

    return fn


def velocity_oracle(x, t):
    """E[x0 - eps | x_t] for x_t = (1 - s) x0 + s eps, s = t / 1000."""
    s = (t.double().cpu() / 1000).reshape(-1, *([1] * (x.dim() - 1)))
    x0 = posterior_x0(x, 1 - s, s)
    eps = (x.double() - (1 - s) * x0) / s
    return (x0 - eps).float()


class OracleModel(ModelMixin, ConfigMixin, VideoModel):
    """A 'transformer' that answers with a closed-form denoiser; records the frame masks and inputs it saw."""

    @register_to_config
    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))  # gives the model a device and dtype
        self.fn = None
        self.seen: list[dict] = []

    def contract(self) -> ModelContract:
        return ModelContract(latent_channels=1, caption_channels=1, caption_length=1, patch_size=(1, 1, 1),
                             frame_mask=True)

    def forward(self, x, timestep, y=None, mask=None, x_mask=None):
        self.seen.append({"x": x.clone(), "t": timestep.clone(), "x_mask": None if x_mask is None else x_mask.clone()})
        return self.fn(x, timestep)


def oracle_pipeline(fn, scheduler, prediction_type="epsilon") -> KinemaVideoPipeline:
    model = OracleModel()
    model.fn = fn
    pipe = KinemaVideoPipeline(transformer=model, scheduler=scheduler, prediction_type=prediction_type)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, z, steps, generator=None, frame_mask=None):
    """The pipeline's own denoising loop from start latents z, unguided."""
    from kinema.sample.pipeline import PromptEmbeddings

    pipe._guidance_scale = 1.0
    embeds = PromptEmbeddings(torch.zeros(z.shape[0], 1, 1, 1), torch.ones(z.shape[0], 1, dtype=torch.long))
    return pipe.denoise(z, embeds, None, frame_mask, steps, generator)
