"""`kinema sample "prompt" -o out.mp4`: text (and reference) to video with a pipeline folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
from kinema.core import KinemaError

from .text_encoders.base import check_prompts

VIDEO_SUFFIXES = (".mp4", ".webp", ".gif")
MODEL_ENV = "KINEMA_PIPELINE"
# the built-in default model, shipped as package data: a small STDiT2 + CausalVideoVAE trained on
# kinema-data's synthetic shapes (configs/default-model/), so `kinema sample "a red circle moving right"` works offline
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"


def default_model() -> str | None:
    return str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "model_index.json").is_file() else None


def read_prompts(prompt: str | None, prompt_file: Path | None) -> list[str]:
    prompts = [prompt] if prompt is not None else []
    if prompt_file is not None:
        lines = [line.strip() for line in prompt_file.read_text(encoding="utf-8").splitlines()]
        prompts += [line for line in lines if line]
    if not prompts:
        raise KinemaError('no prompt: pass one as an argument (kinema sample "a red car on a beach") or '
            '--prompt-file FILE')
    return check_prompts(prompts)


def output_paths(output: Path, count: int, num_frames: int) -> list[Path]:
    """One path per video: ``out.mp4`` for one, ``out_0.mp4, out_1.mp4, ...`` for several; PNG for images."""
    suffix = output.suffix.lower()
    if num_frames == 1:
        if suffix != ".png":
            click.echo(f"note: --num-frames 1 makes an image; writing PNG instead of {suffix or 'no extension'}")
        output = output.with_suffix(".png")
    elif suffix not in VIDEO_SUFFIXES:
        raise KinemaError(f"cannot write a video to {str(output)!r}; use one of {', '.join(VIDEO_SUFFIXES)} "
                       "(or --num-frames 1 for a PNG)")
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(count)]


def parse_resolution(text: str | None) -> tuple[str | None, int | None, int | None]:
    """``240p`` (a table name) or ``HxW`` (pixels) -> (name, height, width)."""
    if text is None:
        return None, None, None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match:
        return None, int(match.group(1)), int(match.group(2))
    return text, None, None


def load_pipeline(model: str | None, device: str | None):
    import torch

    from .pipeline import KinemaVideoPipeline

    model = model or os.environ.get(MODEL_ENV) or default_model()
    if not model:
        raise KinemaError(f"no model: pass --model PIPELINE_DIR (or set {MODEL_ENV}). A pipeline folder holds "
                       "model_index.json with transformer/, vae/, text_encoder/, tokenizer/, scheduler/; "
                       "`python -m kinema.sample.testing DIR` writes a tiny random one (it generates noise)")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components": noise on a command line
    pipe = KinemaVideoPipeline.from_pretrained(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return pipe.to(device), model


@click.command("sample")
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("sample.mp4"), show_default=True,
              help="output file; .mp4, .webp or .gif (a .png with --num-frames 1); several videos get _0, _1, ...")
@click.option("--prompt-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="one prompt per line")
@click.option("--negative-prompt", default=None, help="steer away from this text (default: the model's null caption)")
@click.option("--model", default=None,
              help=f"pipeline folder (diffusers layout); default ${MODEL_ENV}, else the built-in default model")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--num-frames", type=click.IntRange(min=1), default=None, help="frames per clip (pipeline default)")
@click.option("--resolution", default=None, help="table name (144p 240p 360p 480p 720p 1080p 256 512 1024) or HxW")
@click.option("--aspect-ratio", default=None, help="height:width as in Open-Sora (9:16 = landscape) or h/w (0.56)")
@click.option("--fps", type=float, default=None, help="frame rate the model is conditioned on and the file plays at")
@click.option("--scheduler", default=None,
              help="scheduler by name: iddpm, ddim, dpm-solver, pndm, euler, euler-a, heun, unipc, ddpm "
              "(noise-predicting models), rflow (rectified-flow models), or a plugin's")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="sampling steps (the pipeline's default)")
@click.option("--cfg", type=float, default=None, help="classifier-free guidance scale (pipeline default)")
@click.option("--reference", multiple=True,
              help="reference image/video; repeat or separate with ';' (ref_id counts from 0)")
@click.option("--mask-strategy", default=None,
              help='where references go: "loop,ref_id,ref_start,target_start,length,edit_ratio;..." (default "0")')
@click.option("--loop", type=click.IntRange(min=1), default=1, show_default=True,
              help="clips to chain for a longer video")
@click.option("--condition-frame-length", type=click.IntRange(min=1), default=4, show_default=True,
              help="latent frames each further clip takes from the previous one")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--vae-tiling", is_flag=True, help="decode in tiles (less memory)")
@click.option("--cpu-offload", is_flag=True, help="keep models on the CPU, each moved to the device while it runs")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each transformer block (faster steps; the first step at each size compiles)")
@click.option("--attention-cache", "attention_cache", is_flag=False, flag_value="default", default=None,
              metavar="[SPEC]", help='reuse attention outputs across steps (faster, approximate): alone for the '
              'default setting, or "spatial=2,temporal=3,cross=5,start=0.1,end=0.9"')
def sample_command(prompt, output, prompt_file, negative_prompt, model, batch_size, seed, num_frames, resolution,
                   aspect_ratio, fps, scheduler, steps, cfg, reference, mask_strategy, loop, condition_frame_length,
                   device, vae_tiling, cpu_offload, compile_, attention_cache):
    """Generate videos from text (and reference images/videos) with a pipeline folder."""
    import torch

    from kinema.core.video import write_video

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    prompts = read_prompts(prompt, prompt_file)
    pipe, model = load_pipeline(model, "cpu" if cpu_offload else device)
    if pipe.config.random_init:
        click.echo(f"warning: {model} is a randomly initialised test pipeline: its videos are noise", err=True)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)  # without a GPU or --device: a message, not a slow no-op
    if vae_tiling:
        pipe.enable_vae_tiling()
    if compile_:
        pipe.compile_transformer()
    if scheduler:
        pipe.set_scheduler(scheduler)
    if attention_cache is not None:
        from .attention_cache import AttentionCacheConfig

        pipe.enable_attention_cache(AttentionCacheConfig.parse(attention_cache))
    table_name, height, width = parse_resolution(resolution)
    references = [p.strip() for r in reference for p in r.split(";") if p.strip()]
    for ref in references:
        if not Path(ref).is_file():
            raise KinemaError(f"reference {ref!r} does not exist")

    frames_per_clip = num_frames or pipe.defaults["num_frames"]
    paths = output_paths(output, len(prompts), frames_per_clip)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        result = pipe(batch, negative_prompt=negative_prompt, num_frames=num_frames, height=height, width=width,
                      resolution=table_name, aspect_ratio=aspect_ratio, fps=fps, num_inference_steps=steps,
                      guidance_scale=cfg, generator=generator, reference=references or None,
                      mask_strategy=mask_strategy, loop=loop, condition_frame_length=condition_frame_length,
                      output_type="uint8")
        for i, frames in enumerate(result.frames):
            path = write_video(paths[start + i], frames, fps=result.fps)
            click.echo(f"wrote {path} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]})")
