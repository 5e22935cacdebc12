import pytest
import torch

from scheduler_toy import oracle_pipeline, sample

from kinema.sample.schedulers import RectifiedFlowScheduler


def test_add_noise_and_velocity_target_match_closed_form():
    s = RectifiedFlowScheduler()
    x0, eps = torch.randn(2, 4, 2, 2, 2), torch.randn(2, 4, 2, 2, 2)
    t = torch.tensor([250.0, 1000.0])
    want = torch.stack([0.75 * x0[0] + 0.25 * eps[0], eps[1]])
    torch.testing.assert_close(s.add_noise(x0, eps, t), want)
    torch.testing.assert_close(s.training_target(x0, eps, t), x0 - eps)


def test_euler_timesteps_and_shift():
    """The loop asks flow schedulers for Open-Sora's levels 1 - i/n; the shift bends them."""
    from kinema.sample.denoising import set_timesteps

    assert set_timesteps(RectifiedFlowScheduler().sampler(), 4, "cpu").tolist() == [1000.0, 750.0, 500.0, 250.0]
    shifted = set_timesteps(RectifiedFlowScheduler(shift=3.0).sampler(), 4, "cpu")
    s = torch.tensor([1.0, 0.75, 0.5, 0.25])
    torch.testing.assert_close(shifted, 1000 * 3 * s / (1 + 2 * s))


@pytest.mark.parametrize("sampling", ["uniform", "logit-normal"])
def test_training_timesteps_in_range(sampling):
    t = RectifiedFlowScheduler(timestep_sampling=sampling).sample_training_timesteps(
        4000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= 1000
    assert abs(t.mean().item() - 500) < 20  # both are symmetric about the middle
    if sampling == "logit-normal":  # concentrated in the middle
        assert ((t > 250) & (t < 750)).float().mean() > 0.6


def test_bad_timestep_sampling_is_named():
    with pytest.raises(ValueError, match="logit-normal"):
        RectifiedFlowScheduler(timestep_sampling="cosine")


def test_one_euler_step_of_an_exact_velocity_lands_on_x0():
    x0, eps = torch.randn(1, 4, 2, 2, 2), torch.randn(1, 4, 2, 2, 2)
    pipe = oracle_pipeline(lambda x, t: x0 - eps, RectifiedFlowScheduler().sampler(), "flow")
    torch.testing.assert_close(sample(pipe, eps.clone(), 1), x0)


def test_masked_training_uses_clean_given_frames():
    s = RectifiedFlowScheduler()
    x0, eps = torch.randn(1, 4, 2, 2, 2), torch.randn(1, 4, 2, 2, 2)
    seen = {}

    def model(x, t, frame_mask):
        seen["x"], seen["x_mask"] = x, frame_mask
        return torch.zeros_like(x)

    out = s.training_losses(model, x0, torch.tensor([500.0]), mask=torch.tensor([[False, True]]), noise=eps)
    torch.testing.assert_close(seen["x"][:, :, 0], x0[:, :, 0])
    torch.testing.assert_close(out["loss"], ((x0 - eps)[:, :, 1] ** 2).mean().reshape(1))
