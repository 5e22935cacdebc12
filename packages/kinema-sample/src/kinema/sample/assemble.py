"""``kinema pipeline assemble``: a runnable pipeline folder from converted upstream parts and a system's sampling
defaults, so a user never writes ``model_index.json`` by hand.

    kinema dit convert --format opensora-v11 ckpt_folder -o stdit2            # the transformer
    kinema pipeline assemble opensora-1.1 --transformer stdit2 --vae sd-vae-ft-ema --text-encoder t5-v1_1-xxl -o os11
    kinema sample "a red car on a beach" --model os11

Each preset holds what the system's own inference scripts use (``../shared`` specs: Open-Sora 1.0/1.1 §3.1, §10;
Open-Sora-Plan 1.0 §4.6): the transformer class, the sampler, steps, guidance, guided channels and T5 length.
Parts that do not fit (a VAE whose latent channels differ from the transformer's input, a T5 whose width differs
from ``caption_channels``, a token length the null caption was not trained with) are refused naming both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click

from kinema.core import KinemaError

TRANSFORMER_CLASSES = {  # config.json "_class_name" of a converted transformer -> where the class lives
    "STDiT": "kinema.dit.stdit:STDiT",
    "STDiT2": "kinema.dit.stdit2:STDiT2",
    "LatteT2V": "kinema.dit.latte:LatteT2V",
}


@dataclass(frozen=True)
class Preset:
    transformer: str  # the class the system's checkpoints convert to
    sampler: str  # a registered scheduler name (a training objective's sampler or a diffusers scheduler)
    num_inference_steps: int
    guidance_scale: float
    cfg_channel: int | None  # guided latent channels (Open-Sora: 3)
    max_sequence_length: int  # T5 tokens
    defaults: dict = field(default_factory=dict)  # size and frame-rate defaults beyond what the transformer fixes
    variants: dict = field(default_factory=dict)  # name -> (num_frames, height, width)
    default_variant: str | None = None


PRESETS = {
    # v1.0 inference configs: IDDPM 100 steps, cfg 7.0 on channels 0-2 (hard-coded cfg_channel 3), T5 120 tokens;
    # the frame count and size follow the transformer's fixed input_size; fps 8 (24 // 3), 12 for 64 frames
    "opensora-1.0": Preset("STDiT", "iddpm", 100, 7.0, 3, 120),
    # v1.1 sample.py: STDiT2, IDDPM 100 steps, cfg 7.0, cfg_channel 3, T5 200 tokens, 16 frames at 240p 9:16
    # (240x426), conditioned on fps 24
    "opensora-1.1": Preset("STDiT2", "iddpm", 100, 7.0, 3, 200,
                           defaults={"num_frames": 16, "resolution": "240p", "aspect_ratio": "9:16", "fps": 24}),
    # Open-Sora-Plan 1.0 sample_t2v.py: PNDM 50 steps, guidance 7.5 on the 4 noise channels, T5 300 tokens, fps 24
    "opensora-plan-1.0": Preset("LatteT2V", "pndm", 50, 7.5, None, 300, defaults={"fps": 24},
                                variants={"17x256x256": (17, 256, 256), "65x256x256": (65, 256, 256),
                                          "65x512x512": (65, 512, 512)},
                                default_variant="65x512x512"),
}


def _load_transformer(folder: Path, preset_name: str, preset: Preset):
    import importlib

    config = folder / "config.json"
    if not config.is_file():
        raise KinemaError(f"--transformer {str(folder)!r} has no config.json; convert the checkpoint first "
                          f"(`kinema dit convert ... -o DIR`)")
    class_name = json.loads(config.read_text()).get("_class_name")
    if class_name != preset.transformer:
        raise KinemaError(f"--transformer {str(folder)!r} holds a {class_name}, but {preset_name} checkpoints convert "
                          f"to {preset.transformer}; pick the preset of the system the checkpoint comes from")
    module, cls = TRANSFORMER_CLASSES[class_name].split(":")
    return getattr(importlib.import_module(module), cls).from_pretrained(str(folder), low_cpu_mem_usage=False).eval()


def _load_text_encoder(folder: Path):
    from transformers import AutoTokenizer, T5EncoderModel

    if not (folder / "config.json").is_file():
        raise KinemaError(f"--text-encoder {str(folder)!r} is not a transformers T5 folder (no config.json); "
                          "download one, e.g. `huggingface-cli download DeepFloyd/t5-v1_1-xxl --local-dir DIR`")
    try:
        return T5EncoderModel.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise KinemaError(f"cannot load a T5 encoder and tokenizer from {str(folder)!r}: {exc}") from exc


def _sizes(preset: Preset, contract, vae, variant: str | None) -> dict:
    """Sampling size defaults: the variant's, or what a fixed-size transformer was built for."""
    if preset.variants:
        name = variant or preset.default_variant
        if name not in preset.variants:
            raise KinemaError(f"--variant {name!r}; choose one of {', '.join(preset.variants)}")
        num_frames, height, width = preset.variants[name]
        return {"num_frames": num_frames, "height": height, "width": width}
    if variant is not None:
        with_variants = ", ".join(n for n, p in PRESETS.items() if p.variants)
        raise KinemaError(f"--variant {variant!r}: only {with_variants} has variants")
    if contract.latent_size is None:
        return {}
    t, h, w = contract.latent_size
    frames = 1 + vae.temporal_compression * (t - 1) if vae.temporal_compression > 1 else t
    fps = 8 if frames <= 16 else 12  # Open-Sora 1.0's 16-frame and 64-frame configs
    return {"num_frames": frames, "height": h * vae.spatial_compression, "width": w * vae.spatial_compression,
            "fps": fps}


def _check_latte_variant(transformer, sizes: dict, vae) -> None:
    """A LatteT2V's temporal table and 2D grid are laid out for one video size: say which when they differ."""
    t, h, w = vae.latent_size((sizes["num_frames"], sizes["height"], sizes["width"]))
    c = transformer.config
    if (c.video_length, c.sample_size) != (t, h):
        raise KinemaError(f"the transformer is laid out for {c.video_length} latent frames of {c.sample_size}x"
                          f"{c.sample_size}, the variant makes {t} of {h}x{w}; pass the --variant it was trained for")


def assemble(preset_name: str, transformer: str | Path, vae: str | Path, text_encoder: str | Path,
             output: str | Path, variant: str | None = None):
    """Build, check and save a pipeline folder; returns the pipeline."""
    from kinema.vae.loading import load_vae

    from .pipeline import KinemaVideoPipeline
    from .schedulers import sampler_by_name

    if preset_name not in PRESETS:
        raise KinemaError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    output = Path(output)
    if output.exists():
        raise KinemaError(f"{str(output)!r} exists; choose a new output folder (an assembled pipeline is never "
                          "written over another)")
    for flag, path in (("--transformer", transformer), ("--vae", vae), ("--text-encoder", text_encoder)):
        if not Path(path).is_dir():
            raise KinemaError(f"{flag} {str(path)!r} is not a folder")

    model = _load_transformer(Path(transformer), preset_name, preset)
    contract = model.contract()
    if model.null_caption() is not None and contract.caption_length != preset.max_sequence_length:
        raise KinemaError(f"the transformer's null caption has {contract.caption_length} tokens, {preset_name} reads "
                          f"{preset.max_sequence_length} with T5; convert with model_max_length="
                          f"{preset.max_sequence_length}")
    video_vae = load_vae(vae)
    if video_vae.latent_channels != contract.latent_channels:
        raise KinemaError(f"the VAE in {str(vae)!r} makes {video_vae.latent_channels}-channel latents, the transformer "
                          f"in {str(transformer)!r} denoises {contract.latent_channels}; pair them as released")
    t5, tokenizer = _load_text_encoder(Path(text_encoder))
    if t5.config.d_model != contract.caption_channels:
        raise KinemaError(f"the text encoder in {str(text_encoder)!r} is {t5.config.d_model} wide, the transformer "
                          f"expects caption_channels={contract.caption_channels}; use the T5 it was trained with")
    sizes = _sizes(preset, contract, video_vae, variant)
    if preset.transformer == "LatteT2V":
        _check_latte_variant(model, sizes, video_vae)

    scheduler, _ = sampler_by_name(preset.sampler)
    defaults = {**preset.defaults, **sizes, "num_inference_steps": preset.num_inference_steps,
                "guidance_scale": preset.guidance_scale, "max_sequence_length": preset.max_sequence_length}
    pipe = KinemaVideoPipeline(transformer=model, vae=video_vae, text_encoder=t5, tokenizer=tokenizer,
                               scheduler=scheduler, defaults=defaults, prediction_type="epsilon",
                               cfg_channel=preset.cfg_channel)
    pipe.save_pretrained(output)
    return pipe


@click.group("pipeline")
def pipeline_group():
    """Pipeline folders: assemble one from converted upstream parts."""


@pipeline_group.command("assemble")
@click.argument("preset", type=click.Choice(sorted(PRESETS)))
@click.option("--transformer", required=True, type=click.Path(path_type=Path),
              help="converted transformer folder (`kinema dit convert ... -o DIR`)")
@click.option("--vae", required=True, type=click.Path(path_type=Path),
              help="VAE folder: SD AutoencoderKL (Open-Sora), CausalVideoVAE release or kinema (Open-Sora-Plan)")
@click.option("--text-encoder", required=True, type=click.Path(path_type=Path),
              help="T5 folder in transformers' layout (model + tokenizer), e.g. t5-v1_1-xxl")
@click.option("--variant", default=None, help="Open-Sora-Plan 1.0: 17x256x256, 65x256x256 or 65x512x512 (default)")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="new pipeline folder")
def assemble_command(preset, transformer, vae, text_encoder, variant, output):
    """Build a runnable pipeline folder from converted parts with PRESET's sampling defaults."""
    pipe = assemble(preset, transformer, vae, text_encoder, output, variant)
    d = pipe.defaults
    click.echo(f"wrote {output}: {type(pipe.transformer).__name__} + {type(pipe.vae).__name__} + T5, "
               f"{type(pipe.scheduler).__name__} {d['num_inference_steps']} steps, guidance {d['guidance_scale']}; "
               f"`kinema sample PROMPT --model {output}`")


@pipeline_group.command("presets")
def presets_command():
    """List the presets and their sampling defaults."""
    for name, p in PRESETS.items():
        variants = f", variants {', '.join(p.variants)}" if p.variants else ""
        click.echo(f"{name}: {p.transformer}, {p.sampler} {p.num_inference_steps} steps, guidance {p.guidance_scale}"
                   f"{'' if p.cfg_channel is None else f' on {p.cfg_channel} channels'}, T5 {p.max_sequence_length} "
                   f"tokens{variants}")
