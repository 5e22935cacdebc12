import pytest
import torch
from diffusers import DDIMScheduler
from scheduler_toy import alphas_cumprod_1000

from kinema.sample.schedulers import DDIMSampler, DPMSolverSampler


def _model(x, t, **_):
    # a smooth, timestep-dependent stand-in for a denoiser
    return torch.tanh(x) * (t.float() / 1000).reshape(-1, 1, 1, 1, 1)


@pytest.mark.parametrize("cls", [DDIMSampler, DPMSolverSampler])
def test_add_noise_matches_closed_form(cls):
    x0, eps = torch.randn(2, 4, 2, 2, 2), torch.randn(2, 4, 2, 2, 2)
    t = torch.tensor([3, 640])
    abar = alphas_cumprod_1000()[t].float().reshape(-1, 1, 1, 1, 1)
    torch.testing.assert_close(cls().add_noise(x0, eps, t), abar.sqrt() * x0 + (1 - abar).sqrt() * eps)
    torch.testing.assert_close(cls().training_target(x0, eps, t), eps)


def test_ddim_eta0_is_deterministic_and_eta1_is_not():
    z = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    a = DDIMSampler().sample(_model, z, num_inference_steps=10, generator=torch.Generator().manual_seed(1))
    b = DDIMSampler().sample(_model, z, num_inference_steps=10, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = DDIMSampler(eta=1.0).sample(_model, z, num_inference_steps=10, generator=torch.Generator().manual_seed(1))
    d = DDIMSampler(eta=1.0).sample(_model, z, num_inference_steps=10, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)


def test_ddim_wrapper_equals_a_plain_diffusers_loop():
    z = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    ours = DDIMSampler().sample(_model, z, num_inference_steps=8)
    ref = DDIMScheduler(beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=False)
    ref.set_timesteps(8)
    x = z.clone()
    for t in ref.timesteps:
        x = ref.step(_model(x, t.expand(1)), t, x).prev_sample
    torch.testing.assert_close(ours, x)


def test_variance_head_is_ignored():
    z = torch.randn(1, 4, 2, 4, 4)

    def with_sigma(x, t, **kw):
        return torch.cat([_model(x, t), torch.full_like(x, 123.0)], dim=1)

    torch.testing.assert_close(DPMSolverSampler().sample(with_sigma, z, num_inference_steps=5),
                               DPMSolverSampler().sample(_model, z, num_inference_steps=5))


@pytest.mark.parametrize("cls", [DDIMSampler, DPMSolverSampler])
def test_reference_frame_with_edit_ratio_0_is_kept_exactly(cls):
    ref = torch.randn(1, 4, 3, 4, 4)
    seen = []

    def model(x, t, x_mask=None, **_):
        seen.append(x_mask.clone())
        return torch.randn_like(x)

    out = cls().sample(model, ref.clone(), mask=torch.tensor([[0.0, 1.0, 1.0]]), num_inference_steps=6)
    torch.testing.assert_close(out[:, :, 0], ref[:, :, 0], rtol=0, atol=0)
    assert all(m.tolist() == [[False, True, True]] for m in seen)
