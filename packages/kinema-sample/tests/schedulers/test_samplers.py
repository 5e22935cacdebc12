"""Samplers by name are diffusers' classes on the trained chain; the pipeline refuses a mismatched family."""

import diffusers
import pytest
import torch
from kinema.core import KinemaError, lookup
from scheduler_toy import eps_oracle, oracle_pipeline

from kinema.sample.schedulers import EPSILON_SAMPLERS


@pytest.mark.parametrize("name", sorted(EPSILON_SAMPLERS))
def test_each_name_is_a_diffusers_scheduler_on_the_open_sora_chain(name):
    scheduler = lookup("scheduler", name)()
    assert type(scheduler).__module__.startswith("diffusers.")
    assert type(scheduler).__name__ == EPSILON_SAMPLERS[name][0]
    c = scheduler.config
    assert (c.num_train_timesteps, c.beta_start, c.beta_end, c.beta_schedule, c.prediction_type) == \
        (1000, 1e-4, 0.02, "linear", "epsilon")


def test_overrides_reach_the_diffusers_config():
    assert lookup("scheduler", "dpm-solver")(solver_order=3).config.solver_order == 3


def test_a_scheduler_configured_for_another_prediction_is_refused():
    pipe = oracle_pipeline(eps_oracle(False), lookup("scheduler", "ddim")())
    pipe.scheduler = diffusers.DDIMScheduler(prediction_type="v_prediction")
    with pytest.raises(KinemaError, match="prediction_type='v_prediction'.*predicts epsilon"):
        pipe(prompt_embeds=torch.zeros(1, 1, 1), latents=torch.zeros(1, 1, 1, 1, 1), output_type="latent",
             guidance_scale=1.0)
