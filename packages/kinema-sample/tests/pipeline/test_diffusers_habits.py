"""What a diffusers user does with a pipeline works on ours, the way diffusers does it."""

import diffusers
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import SDCFGCutoffCallback
from kinema.core import KinemaError

from kinema.sample import DIFFUSERS_CUSTOM_PIPELINE, KinemaVideoPipeline
from kinema.sample.testing import make_tiny_pipeline

STEPS = 4


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("habits") / "tiny"
    make_tiny_pipeline(path)
    return path


@pytest.fixture()
def pipe(folder):
    p = KinemaVideoPipeline.from_pretrained(folder)
    p.set_progress_bar_config(disable=True)
    return p


def _latents(pipe, **kwargs):
    kwargs = {"generator": _gen(), "num_inference_steps": STEPS, **kwargs}
    return pipe(kwargs.pop("prompt", "a red car"), output_type="latent", **kwargs).frames


def _batch_sizes(pipe, **kwargs):
    sizes = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    try:
        _latents(pipe, **kwargs)
    finally:
        hook.remove()
    return sizes


def test_both_from_pretrained_routes_load_the_same_pipeline_offline(folder, pipe, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generic = DiffusionPipeline.from_pretrained(folder, custom_pipeline=DIFFUSERS_CUSTOM_PIPELINE,
                                                trust_remote_code=True)
    generic.set_progress_bar_config(disable=True)
    assert type(generic).__name__ == "KinemaVideoPipeline"
    torch.testing.assert_close(_latents(generic), _latents(pipe), rtol=0, atol=0)


def test_default_output_is_pil_frames_per_video(pipe):
    frames = pipe(["a cat", "a dog"], num_inference_steps=2).frames
    assert len(frames) == 2 and len(frames[0]) == 4
    assert isinstance(frames[0][0], PIL.Image.Image) and frames[0][0].size == (32, 32)
    np_frames = pipe("a cat", num_inference_steps=2, output_type="np").frames
    assert np_frames.shape == (1, 4, 32, 32, 3)


def test_cfg_cutoff_callback_turns_guidance_off_midway(pipe):
    assert _batch_sizes(pipe) == [2] * STEPS  # guidance: one batched call of [uncond; cond]
    callback = SDCFGCutoffCallback(cutoff_step_ratio=0.5)
    sizes = _batch_sizes(pipe, callback_on_step_end=callback)
    assert sizes == [2, 2, 2, 1]  # cut after step int(0.5 * 4) = 2, as diffusers' callback reads num_timesteps
    assert pipe.num_timesteps == STEPS and pipe.guidance_scale == 0.0


def test_a_callback_that_drops_prompts_is_refused_and_one_that_keeps_them_works(pipe):
    """SDCFGCutoffCallback keeps prompt_embeds[-1:]: with two prompts both videos would follow the last one."""
    prompts = ["a red car", "a blue boat"]
    with pytest.raises(KinemaError, match=r"prompt_embeds with 1 rows after step 2 for 2 videos; keep 2 .* or 4 "):
        _latents(pipe, prompt=prompts, callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=0.5))

    def cutoff(pipe, i, t, tensors):  # the conditional half, from step 2 on
        if i + 1 != 2:
            return {}
        pipe._guidance_scale = 1.0
        return {"prompt_embeds": tensors["prompt_embeds"][tensors["prompt_embeds"].shape[0] // 2:]}

    assert _batch_sizes(pipe, prompt=prompts, callback_on_step_end=cutoff,
                        callback_on_step_end_tensor_inputs=["prompt_embeds"]) == [4, 4, 2, 2]


def test_prompt_embeds_give_what_the_prompt_gives(pipe):
    embeds = pipe.encode_prompt("a red car", do_classifier_free_guidance=True)
    from_embeds = _latents(pipe, prompt=None, prompt_embeds=embeds.prompt_embeds[:, 0],  # diffusers' [B, L, C]
                           prompt_attention_mask=embeds.prompt_attention_mask,
                           negative_prompt_embeds=embeds.negative_prompt_embeds,
                           negative_prompt_attention_mask=embeds.negative_prompt_attention_mask)
    torch.testing.assert_close(from_embeds, _latents(pipe))
    with pytest.raises(KinemaError, match="either prompt or prompt_embeds"):
        pipe("a cat", prompt_embeds=embeds.prompt_embeds)


def test_max_sequence_length_must_fit_the_null_caption(pipe):
    torch.testing.assert_close(_latents(pipe, max_sequence_length=16), _latents(pipe))
    with pytest.raises(KinemaError, match="max_sequence_length=8.*null caption has 16 tokens"):
        _latents(pipe, max_sequence_length=8)


def test_dtype_and_to_dtype(pipe):
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"
    expected = _latents(pipe)
    pipe.to(torch.float16)
    assert pipe.dtype == torch.float16 and pipe.vae.dtype == torch.float16
    assert pipe.text_encoder.dtype == torch.float16
    half = _latents(pipe)  # latents stay fp32 between steps; the models run in half precision
    assert half.dtype == torch.float32 and (half - expected).abs().mean() < 0.05 * expected.abs().mean()


SCHEDULERS = ["DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
              "EulerAncestralDiscreteScheduler", "UniPCMultistepScheduler", "HeunDiscreteScheduler",
              "LMSDiscreteScheduler"]


def _diffusers_loop(pipe, scheduler, guidance_scale=4.0):
    """The loop as diffusers' documentation writes it, with guidance, for this pipeline's transformer."""
    from diffusers.utils.torch_utils import randn_tensor
    from kinema.dit.contract import size_conditions

    embeds = pipe.encode_prompt("a red car", do_classifier_free_guidance=True)
    y = torch.cat([embeds.negative_prompt_embeds, embeds.prompt_embeds])
    y_mask = torch.cat([embeds.negative_prompt_attention_mask, embeds.prompt_attention_mask])
    inputs = pipe.transformer.model_inputs(y, y_mask, sizes=size_conditions(4, 32, 32, 8))
    generator = _gen()
    x = randn_tensor((1, 4, 4, 8, 8), generator=generator) * scheduler.init_noise_sigma
    scheduler.set_timesteps(STEPS)
    takes_generator = "generator" in __import__("inspect").signature(scheduler.step).parameters
    with torch.no_grad():
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
            uncond, cond = pipe.transformer(x_in, t.reshape(1).expand(2), **inputs)[:, :4].chunk(2)
            eps = uncond + guidance_scale * (cond - uncond)
            x = scheduler.step(eps, t, x, **({"generator": generator} if takes_generator else {})).prev_sample
    return x


@pytest.mark.parametrize("name", SCHEDULERS)
def test_any_diffusers_scheduler_by_from_config(pipe, name):
    cls = getattr(diffusers, name)
    pipe.scheduler = cls.from_config(pipe.scheduler.config)  # keeps the trained betas
    assert isinstance(pipe.scheduler, cls) and pipe.scheduler.config.beta_end == 0.02
    expected = _diffusers_loop(pipe, cls.from_config(pipe.scheduler.config))
    if name == "DPMSolverMultistepScheduler":  # the copied learned variance_type is dropped (3-channel layout)
        assert pipe.scheduler.config.variance_type is None
    torch.testing.assert_close(_latents(pipe), expected, rtol=1e-5, atol=1e-5)


def test_a_scheduler_by_assignment_is_saved(pipe, tmp_path):
    pipe.scheduler = diffusers.PNDMScheduler(beta_start=1e-4, beta_end=0.02, skip_prk_steps=True)
    pipe.save_pretrained(tmp_path / "pndm")
    assert isinstance(KinemaVideoPipeline.from_pretrained(tmp_path / "pndm").scheduler, diffusers.PNDMScheduler)


def test_cpu_offload_without_a_gpu_says_so_and_works_on_a_given_device(pipe, monkeypatch):
    expected = _latents(pipe)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for enable in (pipe.enable_model_cpu_offload, pipe.enable_sequential_cpu_offload):
        with pytest.raises(KinemaError, match="no GPU is visible.*leave it off"):
            enable()
    pipe.enable_model_cpu_offload(device="cpu")
    torch.testing.assert_close(_latents(pipe), expected)
    pipe.enable_sequential_cpu_offload(device="cpu")
    moved = []
    pipe.transformer.x_embedder.proj.register_forward_pre_hook(lambda m, a: moved.append(m.weight.device.type))
    torch.testing.assert_close(_latents(pipe), expected)
    assert moved and pipe.transformer.x_embedder.proj.weight.device.type == "cpu"
    pipe.disable_cpu_offload()


def test_set_attention_backend_maps_or_refuses(pipe):
    expected = _latents(pipe)
    pipe.transformer.set_attention_backend("_native_math")
    assert pipe.transformer.config.attention == "math"
    torch.testing.assert_close(_latents(pipe), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(KinemaError, match="sage"):
        pipe.transformer.set_attention_backend("sage")
