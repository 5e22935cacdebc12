"""Reference conditioning end to end: image-to-video, extension, loop (long videos), class labels."""

import pytest
import torch
from kinema.core import KinemaError
from kinema.core.video import write_video

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.schedulers import IDDPMScheduler
from kinema.sample.testing import make_tiny_pipeline, tiny_stdit2, tiny_vae
from kinema.sample.text_encoders import ClassLabelEncoder, UnconditionalEncoder

FAST = {"num_inference_steps": 4}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    p = make_tiny_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def _image(seed=0):
    """A smooth colour image [3, 32, 32] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")[:, 0]


def _reconstruction(pipe, video):
    """What the VAE can give back for a reference: the best a generator that keeps it can do."""
    with torch.no_grad():
        z = pipe.vae.encode_video(video[None], sample=False)
        return pipe.vae.decode_video(z)[0], z[0]


@pytest.mark.parametrize("scheduler, tol, pixel_tol", [("ddim", 1e-5, 1e-3), ("iddpm", 0.05, 0.1)])
def test_image_to_video_keeps_the_reference_frame(pipe, scheduler, tol, pixel_tol):
    pipe.set_scheduler(scheduler)
    image = _image()
    recon, z_ref = _reconstruction(pipe, image[:, None])
    latents = pipe("a cat", reference=image, mask_strategy="0", output_type="latent", generator=_gen(), **FAST).frames
    assert (latents[0, :, 0] - z_ref[:, 0]).abs().max() < tol  # ddim holds it exactly; iddpm re-noises at t=0 once
    video = pipe("a cat", reference=image, generator=_gen(), output_type="pt", **FAST).frames  # default strategy "0"
    first = video[0, 0] * 2 - 1
    free = pipe("a cat", generator=_gen(), output_type="pt", **FAST).frames[0, 0] * 2 - 1
    recon = recon.clamp(-1, 1)
    err, free_err = (first - recon[:, 0]).abs().mean(), (free - recon[:, 0]).abs().mean()
    assert err < pixel_tol and free_err > 3 * err


def test_image_to_video_from_a_png_file(pipe, tmp_path):
    pipe.set_scheduler("ddim")
    image = _image(1)
    path = tmp_path / "ref.png"
    write_video(path, ((image[None].permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8), fps=1)
    recon = _reconstruction(pipe, image[:, None])[0].clamp(-1, 1)
    first = pipe("a cat", reference=str(path), generator=_gen(), output_type="pt", **FAST).frames[0, 0] * 2 - 1
    assert (first - recon[:, 0]).abs().mean() < 0.02  # 8-bit PNG rounding only


def test_extension_keeps_the_given_frames(pipe):
    pipe.set_scheduler("ddim")
    clip = torch.stack([_image(s) for s in range(4)], dim=1)  # [3, 4, 32, 32]
    _, z_ref = _reconstruction(pipe, clip)
    latents = pipe("a cat", reference=[clip], mask_strategy="0,0,0,-2,2", output_type="latent",
                   generator=_gen(), **FAST).frames
    torch.testing.assert_close(latents[0, :, 2:], z_ref[:, :2], atol=1e-5, rtol=0)
    assert (latents[0, :, :2] - z_ref[:, :2]).abs().mean() > 0.1


def test_connecting_two_images_and_editing(pipe):
    pipe.set_scheduler("ddim")
    a, b = _image(2), _image(3)
    latents = pipe("a cat", reference=[a, b], mask_strategy="0;0,1,0,-1,1", output_type="latent",
                   generator=_gen(), **FAST).frames
    torch.testing.assert_close(latents[0, :, 0], _reconstruction(pipe, a[:, None])[1][:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(latents[0, :, -1], _reconstruction(pipe, b[:, None])[1][:, 0], atol=1e-5, rtol=0)
    clip = torch.stack([_image(s) for s in range(4)], dim=1)
    z_ref = _reconstruction(pipe, clip)[1]
    edited = pipe("a cat", reference=[clip], mask_strategy="0,0,0,0,4,0.5", output_type="latent",
                  generator=_gen(), **FAST).frames
    regenerated = pipe("a cat", output_type="latent", generator=_gen(), **FAST).frames
    # editing from half the noise stays nearer the source than a fresh sample
    assert (edited - z_ref).abs().mean() < (regenerated - z_ref).abs().mean()


def test_loop_makes_longer_videos_from_overlapping_clips(pipe):
    pipe.set_scheduler("ddim")
    frames = pipe("a cat", loop=3, condition_frame_length=1, generator=_gen(), output_type="uint8", **FAST).frames
    assert frames.shape == (1, 4 + 2 * 3, 32, 32, 3)  # loop * (num_frames - L) + L
    with pytest.raises(KinemaError, match="condition_frame_length"):
        pipe("a cat", loop=2, condition_frame_length=4)


def test_bad_references_are_named(pipe):
    with pytest.raises(KinemaError, match="ref_id 1 but only 1 reference"):
        pipe("a cat", reference=_image(), mask_strategy="0,1", **FAST)
    with pytest.raises(KinemaError, match="field 2 \\(ref_id\\)"):
        pipe("a cat", reference=_image(), mask_strategy="0,x", **FAST)
    with pytest.raises(KinemaError, match="no such file"):
        pipe("a cat", reference="missing.png", **FAST)


@pytest.mark.parametrize("encoder", ["classes", "unconditional"])
def test_class_conditional_and_unconditional_models(tmp_path, encoder):
    if encoder == "classes":
        text_encoder = ClassLabelEncoder(num_classes=3, hidden_size=12, class_names=["walk", "run", "jump"])
        prompts = ["run", "jump"]
    else:
        text_encoder, prompts = UnconditionalEncoder(hidden_size=12), ["", ""]
    pipe = KinemaVideoPipeline(transformer=tiny_stdit2(caption_channels=12, model_max_length=1), vae=tiny_vae(),
                               scheduler=IDDPMScheduler().sampler(), text_encoder=text_encoder,
                               defaults={"height": 32, "width": 32, "num_frames": 2})
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompts, generator=_gen(), output_type="pt", **FAST).frames
    assert out.shape == (2, 2, 3, 32, 32)
    pipe.save_pretrained(tmp_path / encoder)
    back = KinemaVideoPipeline.from_pretrained(tmp_path / encoder)
    assert type(back.text_encoder) is type(text_encoder) and back.tokenizer is None
