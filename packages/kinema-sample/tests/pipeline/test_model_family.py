"""Every registered video model samples through the one pipeline: text-to-video, and where the model takes a
frame mask, image-to-video and extension. Models are tiny and random; what is checked is the plumbing: the
prompt reaches the model, shapes come out right, given frames are kept, refusals are clear."""

import pytest
import torch
from kinema.core import KinemaError

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.schedulers import epsilon_sampler
from kinema.sample.testing import randomise_zero_layers, tiny_stdit2, tiny_vae
from kinema.sample.text_encoders import tiny_t5_parts

CAPTION = {"caption_channels": 32}
PIXART_FAMILY = {"hidden_size": 32, "depth": 2, "num_heads": 4, "model_max_length": 16, **CAPTION}


def _model(name):
    torch.manual_seed(0)
    if name == "STDiT":
        from kinema.dit.stdit import STDiT

        return randomise_zero_layers(STDiT(input_size=(4, 8, 8), **PIXART_FAMILY))
    if name == "STDiT2":
        return tiny_stdit2(caption_channels=32, model_max_length=16)
    if name == "DiT":
        from kinema.dit.dit import DiT

        return randomise_zero_layers(DiT(input_size=(4, 8, 8), **PIXART_FAMILY))
    if name == "PixArt":
        from kinema.dit.pixart import PixArt

        return randomise_zero_layers(PixArt(input_size=8, patch_size=2, **PIXART_FAMILY))
    from kinema.dit.latte import LatteT2V

    return randomise_zero_layers(LatteT2V(sample_size=8, patch_size=2, num_layers=2, num_attention_heads=2,
                                           attention_head_dim=16, caption_num_tokens=16, video_length=4, **CAPTION))


FRAMES = {"STDiT": 4, "STDiT2": 4, "DiT": 4, "PixArt": 1, "LatteT2V": 4}
FRAME_MASK = ("STDiT", "STDiT2", "DiT")


def _pipeline(name, scheduler="ddim"):
    text_encoder, tokenizer = tiny_t5_parts(hidden_size=32)
    pipe = KinemaVideoPipeline(transformer=_model(name), vae=tiny_vae(), text_encoder=text_encoder,
                               tokenizer=tokenizer, scheduler=epsilon_sampler(scheduler),
                               defaults={"num_frames": FRAMES[name], "height": 32, "width": 32,
                                         "num_inference_steps": 3, "guidance_scale": 4.0})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(FRAMES))
def test_text_to_video(name, tmp_path):
    pipe = _pipeline(name)
    a = pipe("a red car", generator=_gen(), output_type="pt").frames
    assert a.shape == (1, FRAMES[name], 3, 32, 32) and torch.isfinite(a).all()
    b = pipe("a blue boat", generator=_gen(), output_type="pt").frames
    assert (a - b).abs().max() > 1e-4  # the prompt reaches the model
    pipe.save_pretrained(tmp_path / name)
    again = KinemaVideoPipeline.from_pretrained(tmp_path / name)
    again.set_progress_bar_config(disable=True)
    torch.testing.assert_close(again("a red car", generator=_gen(), output_type="pt").frames, a, rtol=0, atol=0)


def _image(seed=0):
    coarse = torch.rand(3, 1, 4, 4, generator=_gen(seed)) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")[:, 0]


def _encoded(pipe, video):
    with torch.no_grad():
        return pipe.vae.encode_video(video[None], sample=False)[0]


@pytest.mark.parametrize("name", FRAME_MASK)
def test_image_to_video_and_extension_keep_the_given_frames(name):
    pipe = _pipeline(name)
    image = _image()
    latents = pipe("a cat", reference=image, output_type="latent", generator=_gen()).frames
    torch.testing.assert_close(latents[0, :, 0], _encoded(pipe, image[:, None])[:, 0], atol=1e-5, rtol=0)
    clip = torch.stack([_image(s) for s in range(4)], dim=1)
    latents = pipe("a cat", reference=[clip], mask_strategy="0,0,0,-2,2", output_type="latent",
                   generator=_gen()).frames
    z_ref = _encoded(pipe, clip)
    torch.testing.assert_close(latents[0, :, 2:], z_ref[:, :2], atol=1e-5, rtol=0)  # extension: clip's start at the end
    assert (latents[0, :, :2] - z_ref[:, :2]).abs().mean() > 0.1  # the rest is generated


@pytest.mark.parametrize("name", ["PixArt", "LatteT2V"])
def test_models_without_a_frame_mask_refuse_references_clearly(name):
    pipe = _pipeline(name)
    with pytest.raises(KinemaError, match=f"{name} takes no frame mask.*use STDiT, STDiT2 or DiT"):
        pipe("a cat", reference=_image())


def test_an_image_model_is_asked_for_one_frame():
    with pytest.raises(KinemaError, match="PixArt is an image model.*num_frames=1"):
        _pipeline("PixArt")("a cat", num_frames=4)


def test_a_fixed_size_model_names_its_size():
    with pytest.raises(KinemaError, match=r"STDiT was built for latents of \(T, H, W\) = \(4, 8, 8\)"):
        _pipeline("STDiT")("a cat", height=48, width=32)


def test_latte_guides_with_the_encoded_empty_prompt():
    """Open-Sora-Plan 1.0 has no learned null caption: the unconditional branch is the empty prompt, encoded."""
    pipe = _pipeline("LatteT2V")
    assert pipe.transformer.null_caption() is None
    embeds = pipe.encode_prompt("a cat", do_classifier_free_guidance=True)
    explicit = pipe.encode_prompt("a cat", negative_prompt="", do_classifier_free_guidance=True)
    torch.testing.assert_close(embeds.negative_prompt_embeds, explicit.negative_prompt_embeds)
    assert embeds.negative_prompt_attention_mask.sum() < embeds.prompt_attention_mask.sum()  # only the EOS token
