"""`kinema pipeline assemble` refuses parts that do not fit, naming both sides, before writing anything."""

import pytest
import torch
from kinema.core import KinemaError
from upstream_files import T5_WIDTH, write_causal_vae_release, write_sd_vae, write_t5

from kinema.sample.assemble import PRESETS, assemble


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from kinema.dit.latte import LatteT2V
    from kinema.dit.stdit2 import STDiT2

    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    STDiT2(hidden_size=48, depth=1, num_heads=4, caption_channels=T5_WIDTH, model_max_length=200,
           qk_norm=True).save_pretrained(root / "stdit2")
    STDiT2(hidden_size=48, depth=1, num_heads=4, caption_channels=T5_WIDTH, model_max_length=120,
           qk_norm=True).save_pretrained(root / "stdit2-120")
    STDiT2(hidden_size=48, depth=1, num_heads=4, caption_channels=16, model_max_length=200,
           qk_norm=True).save_pretrained(root / "stdit2-narrow")
    STDiT2(hidden_size=48, depth=1, num_heads=4, caption_channels=T5_WIDTH, model_max_length=200, qk_norm=True,
           in_channels=8).save_pretrained(root / "stdit2-8ch")
    LatteT2V(sample_size=32, num_layers=1, num_attention_heads=2, attention_head_dim=8, caption_channels=T5_WIDTH,
             video_length=5).save_pretrained(root / "latte")
    write_sd_vae(root / "sd-vae")
    write_causal_vae_release(root / "causal-vae")
    write_t5(root / "t5")
    return root


def test_a_fitting_set_is_written_with_the_presets_defaults(parts, tmp_path):
    pipe = assemble("opensora-1.1", parts / "stdit2", parts / "sd-vae", parts / "t5", tmp_path / "out")
    preset = PRESETS["opensora-1.1"]
    d = pipe.defaults
    assert (d["num_inference_steps"], d["guidance_scale"], d["max_sequence_length"]) == (100, 7.0, 200)
    assert pipe.config.cfg_channel == 3 and type(pipe.scheduler).__name__ == "DDPMScheduler"
    assert type(pipe.transformer).__name__ == preset.transformer and (tmp_path / "out" / "model_index.json").is_file()


@pytest.mark.parametrize("preset, transformer, vae, match", [
    ("opensora-1.0", "stdit2", "sd-vae", "holds a STDiT2, but opensora-1.0 checkpoints convert to STDiT"),
    ("opensora-1.1", "stdit2-8ch", "sd-vae", "makes 4-channel latents, the transformer .* denoises 8"),
    ("opensora-1.1", "stdit2-narrow", "sd-vae", "is 32 wide, the transformer expects caption_channels=16"),
    ("opensora-1.1", "stdit2-120", "sd-vae", "null caption has 120 tokens, opensora-1.1 reads 200"),
])
def test_parts_that_do_not_fit_are_named(parts, tmp_path, preset, transformer, vae, match):
    with pytest.raises(KinemaError, match=match):
        assemble(preset, parts / transformer, parts / vae, parts / "t5", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_latte_variant_must_match_the_checkpoint(parts, tmp_path):
    with pytest.raises(KinemaError, match="laid out for 5 latent frames of 32x32, the variant makes 17 of 64x64"):
        assemble("opensora-plan-1.0", parts / "latte", parts / "causal-vae", parts / "t5", tmp_path / "a")
    with pytest.raises(KinemaError, match="--variant '9x9x9'; choose one of 17x256x256"):
        assemble("opensora-plan-1.0", parts / "latte", parts / "causal-vae", parts / "t5", tmp_path / "b",
                 variant="9x9x9")


def test_an_existing_output_is_never_written_over(parts, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(KinemaError, match="exists; choose a new output folder"):
        assemble("opensora-1.1", parts / "stdit2", parts / "sd-vae", parts / "t5", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
