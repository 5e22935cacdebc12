import json

import pytest
import torch
from kinema.core import KinemaError

from kinema.sample.pipeline import KinemaVideoPipeline
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, PNDMScheduler

from kinema.sample.testing import make_tiny_pipeline

FAST = {"num_inference_steps": 3, "output_type": "pt"}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    make_tiny_pipeline(path)
    return path


@pytest.fixture()
def pipe(folder):
    p = KinemaVideoPipeline.from_pretrained(folder)
    p.set_progress_bar_config(disable=True)
    return p


# ---------------------------------------------------------------- folder round trip


def test_folder_layout(folder):
    index = json.loads((folder / "model_index.json").read_text())
    assert index["transformer"] == ["kinema.dit.stdit2", "STDiT2"]
    assert index["text_encoder"] == ["transformers", "T5EncoderModel"]
    assert index["scheduler"] == ["diffusers", "DDPMScheduler"]  # IDDPM sampling: diffusers' learned-range DDPM
    assert (index["prediction_type"], index["cfg_channel"]) == ("epsilon", None)
    assert index["defaults"]["num_frames"] == 4
    for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / name).is_dir()
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["variance_type"] == "learned_range"


def test_save_reload_gives_identical_output(pipe, tmp_path):
    first = pipe("a red car", generator=_gen(3), **FAST).frames
    pipe.save_pretrained(tmp_path / "copy")
    again = KinemaVideoPipeline.from_pretrained(tmp_path / "copy")
    again.set_progress_bar_config(disable=True)
    second = again("a red car", generator=_gen(3), **FAST).frames
    assert first.shape == (1, 4, 3, 32, 32)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    third = again("a red car", generator=_gen(4), **FAST).frames
    assert not torch.equal(first, third)


@pytest.mark.parametrize("name, cls", [("ddim", DDIMScheduler), ("pndm", PNDMScheduler)])
def test_scheduler_swap_by_name_needs_no_other_change(pipe, tmp_path, name, cls):
    pipe.set_scheduler(name)
    assert isinstance(pipe.scheduler, cls) and pipe.scheduler.config.beta_end == 0.02  # the trained chain
    out = pipe("a red car", generator=_gen(), **FAST).frames
    assert out.shape == (1, 4, 3, 32, 32) and torch.isfinite(out).all()
    pipe.save_pretrained(tmp_path / name)
    assert isinstance(KinemaVideoPipeline.from_pretrained(tmp_path / name).scheduler, cls)


def test_a_flow_scheduler_on_an_epsilon_model_is_refused_with_the_fix(pipe):
    with pytest.raises(KinemaError, match="predicts noise.*set_scheduler\\('iddpm'\\)"):
        pipe.set_scheduler("rflow")


def test_cfg_channel_guides_only_the_first_channels(pipe):
    """Open-Sora 1.0's cfg_channel=3: channel 3 of the prediction stays conditional."""
    latents = torch.randn(1, 4, 4, 8, 8, generator=_gen(1))
    outs = {}
    for channels in (None, 3):
        pipe.register_to_config(cfg_channel=channels)
        outs[channels] = pipe("a cat", latents=latents, guidance_scale=6.0, num_inference_steps=2,
                              output_type="latent").frames
    pipe.register_to_config(cfg_channel=None)
    assert not torch.equal(outs[None][:, 3], outs[3][:, 3])


def test_dpm_solver_and_batching(pipe):
    pipe.set_scheduler("dpm-solver")
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    out = pipe(["a red car", "a cat"], num_videos_per_prompt=2, generator=_gen(), output_type="uint8",
               num_inference_steps=3)
    assert out.frames.shape == (4, 4, 32, 32, 3) and out.frames.dtype == torch.uint8


# ---------------------------------------------------------------- call features


def test_callback_sees_and_can_replace_latents(pipe):
    seen = []

    def cb(p, step, t, kwargs):
        seen.append(step)
        return {"latents": torch.zeros_like(kwargs["latents"])}

    out = pipe("a cat", callback_on_step_end=cb, output_type="latent", generator=_gen(), num_inference_steps=3).frames
    assert seen == [0, 1, 2] and out.abs().sum() == 0


def test_guidance_uses_the_null_caption_in_one_batched_call(pipe):
    sizes = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    pipe("a cat", guidance_scale=5.0, **FAST)
    pipe("a cat", guidance_scale=1.0, **FAST)
    hook.remove()
    assert sizes == [2] * 3 + [1] * 3


def test_negative_prompt_changes_the_result(pipe):
    a = pipe("a cat", generator=_gen(), **FAST).frames
    b = pipe("a cat", negative_prompt="blurry", generator=_gen(), **FAST).frames
    assert not torch.equal(a, b)


def test_cpu_offload_and_vae_switches_keep_the_result(pipe):
    a = pipe("a cat", generator=_gen(), **FAST).frames
    pipe.enable_model_cpu_offload(device="cpu")
    pipe.enable_vae_slicing()
    assert pipe.vae.use_slicing
    b = pipe("a cat", generator=_gen(), **FAST).frames
    torch.testing.assert_close(a, b)


def test_sizes_from_open_sora_tables(pipe):
    assert pipe.resolve_size(None, None, "240p", "9:16") == (240, 424)  # 426 -> latent grid of 4 px
    assert pipe.resolve_size(None, None, "144p", "1:1") == (192, 192)
    assert pipe.resolve_size(None, None, "144p", "0.75") == (164, 220)
    assert pipe.resolve_size(None, None, None, None) == (32, 32)  # the folder's defaults
    with pytest.raises(KinemaError, match="valid height/width ratios: 0.38"):
        pipe.resolve_size(None, None, "240p", "5:7")
    with pytest.raises(KinemaError, match="valid: 144p, 240p"):
        pipe.resolve_size(None, None, "250p", None)


def test_png_sized_output_with_one_frame(pipe):
    out = pipe("a cat", num_frames=1, height=16, width=24, output_type="np", num_inference_steps=3).frames
    assert out.shape == (1, 1, 16, 24, 3) and 0 <= out.min() and out.max() <= 1


# ---------------------------------------------------------------- bad input


def test_empty_prompt_is_a_clear_error(pipe):
    with pytest.raises(KinemaError, match="prompt 0 is empty"):
        pipe("  ")


def test_long_prompt_is_truncated_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="at most 16 tokens"):
        pipe("a very long prompt that does not fit into sixteen bytes", **FAST)


def test_unsupported_size_lists_valid_ones(pipe):
    with pytest.raises(KinemaError, match="valid nearby: 28 or 32"):
        pipe("a cat", height=30, width=32)


def test_missing_pipeline_and_weights_say_how_to_provide_them(folder, tmp_path):
    with pytest.raises(KinemaError, match="python -m kinema.sample.testing"):
        KinemaVideoPipeline.from_pretrained(tmp_path / "nothing")
    broken = tmp_path / "broken"
    KinemaVideoPipeline.from_pretrained(folder).save_pretrained(broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(KinemaError, match="cannot load the pipeline at .*broken.*diffusion_pytorch_model"):
        KinemaVideoPipeline.from_pretrained(broken)


def test_untrusted_component_library_is_refused(folder, tmp_path):
    bad = tmp_path / "bad"
    KinemaVideoPipeline.from_pretrained(folder).save_pretrained(bad)
    index = json.loads((bad / "model_index.json").read_text())
    index["vae"] = ["os", "system"]
    (bad / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(KinemaError, match="only classes from kinema, transformers, diffusers"):
        KinemaVideoPipeline.from_pretrained(bad)


def test_causal_vae_pipeline_checks_frame_counts():
    pipe = make_tiny_pipeline(vae="causal")
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a cat", generator=_gen(), **FAST).frames
    assert out.shape == (1, 5, 3, 32, 32)
    pipe.enable_vae_tiling()
    assert pipe.vae.use_tiling
    tiled = pipe("a cat", generator=_gen(), **FAST).frames
    assert (tiled - out).abs().mean() < 0.05  # tiles only blend at seams
    pipe.disable_vae_tiling()
    with pytest.raises(KinemaError, match="valid nearby: 5 or 9"):
        pipe("a cat", num_frames=8)


def test_folder_can_name_a_registered_text_encoder_instead_of_copying_it(tmp_path):
    from kinema.sample.text_encoders import RegisteredTextEncoder

    original = make_tiny_pipeline()  # its text encoder is tiny-t5's (seed 0)
    named = make_tiny_pipeline()
    named.text_encoder, named.tokenizer = RegisteredTextEncoder("tiny-t5", {"max_length": 16, "hidden_size": 32}), None
    named.save_pretrained(tmp_path / "named")
    index = json.loads((tmp_path / "named" / "model_index.json").read_text())
    assert index["text_encoder"] == ["kinema.sample.text_encoders.registered", "RegisteredTextEncoder"]
    assert index["tokenizer"] == [None, None]
    assert [f.name for f in (tmp_path / "named" / "text_encoder").iterdir()] == ["config.json"]
    loaded = KinemaVideoPipeline.from_pretrained(tmp_path / "named")
    for p in (original, loaded):
        p.set_progress_bar_config(disable=True)
    a = original("a red car", generator=_gen(3), output_type="latent", num_inference_steps=3).frames
    b = loaded("a red car", generator=_gen(3), output_type="latent", num_inference_steps=3).frames
    torch.testing.assert_close(a, b)


def test_a_folder_in_the_old_format_is_reported(tmp_path):
    make_tiny_pipeline(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    index["_kinema_text_encoder"] = {"name": "minilm"}
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(KinemaError, match="format before .* re-export it"):
        KinemaVideoPipeline.from_pretrained(tmp_path / "p")
