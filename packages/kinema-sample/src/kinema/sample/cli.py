"""`kinema sample "prompt" -o out.mp4`: text (and reference) to video with a pipeline folder.

Every option is checked before the models load or run (numbers by kinema.core.validate's click types, the
device, the output folder, references from their headers, the memory a request needs); each video gets a JSON
sidecar (kinema.sample.sidecar) that `--from-sidecar` runs again.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import click
from kinema.core import KinemaError
from kinema.core.validate import MAX_SEED, BoundedInt, FiniteFloat

from .text_encoders.base import check_prompts

VIDEO_SUFFIXES = (".mp4", ".webp", ".gif")
MODEL_ENV = "KINEMA_PIPELINE"
# the built-in default model, shipped as package data: a small STDiT2 + CausalVideoVAE trained on
# kinema-data's synthetic shapes (configs/default-model/), so `kinema sample "a red circle moving right"` works offline
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DTYPES = ("float32", "bfloat16", "float16")
# upper bounds that catch typos; sizes and frame counts are bounded by the memory estimate instead
MAX_STEPS = 1000  # the schedulers' training chain has 1000 steps
MAX_FRAMES = 100_000
MAX_BATCH = 1024
MAX_LOOP = 1000
MAX_FPS = 1000.0
MAX_GUIDANCE = 100.0


def default_model() -> str | None:
    return str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "model_index.json").is_file() else None


def read_prompt_file(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file; a binary or otherwise undecodable file is refused in one line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise KinemaError(f"--prompt-file {str(path)!r} is not UTF-8 text (byte {err.start} is "
                          f"{data[err.start:err.start + 1]!r}); give a text file with one prompt per line") from None
    if "\0" in text:
        raise KinemaError(f"--prompt-file {str(path)!r} looks binary (it holds NUL bytes); give a text file with one "
                          "prompt per line")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_prompts(prompt: str | None, prompt_file: Path | None, more: tuple[str, ...] = ()) -> list[str]:
    prompts = ([prompt] if prompt is not None else []) + list(more)
    if prompt_file is not None:
        prompts += read_prompt_file(prompt_file)
    if not prompts:
        raise KinemaError('no prompt: pass one as an argument (kinema sample "a red car on a beach"), --prompt TEXT '
                          '(repeatable) or --prompt-file FILE')
    return check_prompts(prompts)


def check_output_target(output: Path, field: str = "-o") -> None:
    """Fail before generating, not after: the target is not a folder and its folder exists (made if missing) and
    takes a new file."""
    if output.is_dir():
        raise KinemaError(f"{field} {str(output)!r} is a folder; give a file name, e.g. "
                          f"{field} {str(output / ('sample' + (output.suffix or '.mp4')))!r}")
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):  # the only sure test: a read-only mount passes os.access as root
            pass
    except OSError as err:
        raise KinemaError(f"{field} {str(output)!r}: cannot write in {str(parent) or '.'!r} ({err.strerror or err}); "
                          "choose a folder you can write to") from None


def output_paths(output: Path, count: int, num_frames: int, numbered: bool = False,
                 overwrite: bool = False) -> list[Path]:
    """One path per video: ``out.mp4`` for one, ``out_0.mp4, out_1.mp4, ...`` for several (or always, when
    ``numbered``: a grid takes ``out.mp4``); PNG for images. Files already there (a video or its .json sidecar)
    are an error unless ``overwrite``: an earlier run's videos are not replaced by accident."""
    suffix = output.suffix.lower()
    if num_frames == 1:
        if suffix != ".png":
            click.echo(f"note: --num-frames 1 makes an image; writing PNG instead of {suffix or 'no extension'}")
        output = output.with_suffix(".png")
    elif suffix not in VIDEO_SUFFIXES:
        raise KinemaError(f"cannot write a video to {str(output)!r}; use one of {', '.join(VIDEO_SUFFIXES)} "
                       "(or --num-frames 1 for a PNG)")
    if count == 1 and not numbered:
        paths = [output]
    else:
        paths = [output.with_name(f"{output.stem}_{i}{output.suffix}") for i in range(count)]
    targets = paths + [output] if numbered else paths
    for path in targets:
        if path.is_dir() or path.with_suffix(".json").is_dir():
            raise KinemaError(f"-o: {str(path)!r} (or its .json sidecar) is a folder; choose another -o")
    taken = [p for path in targets for p in (path, path.with_suffix(".json")) if p.exists()]
    if taken and not overwrite:
        more = f" (and {len(taken) - 1} more of this run's files)" if len(taken) > 1 else ""
        raise KinemaError(f"-o: {str(taken[0])!r} already exists{more}; choose another -o, or pass --overwrite "
                          "to replace it")
    return paths


def parse_resolution(text: str | None) -> tuple[str | None, int | None, int | None]:
    """``240p`` (a table name) or ``HxW`` (pixels) -> (name, height, width)."""
    if text is None:
        return None, None, None
    if not text.strip():
        raise KinemaError("--resolution is empty; give a table name (144p 240p 360p 480p 720p 1080p 256 512 1024) "
                          "or HxW, e.g. 240x426")
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match:
        return None, int(match.group(1)), int(match.group(2))
    return text, None, None


def torch_dtype(name: str | None, device) -> object:
    """``--dtype`` -> a torch dtype. Half precision runs on the CPU (torch emulates bfloat16 where the CPU lacks
    it), slower than float32 and with different frames, so it is allowed with a warning."""
    import torch

    name = name or "float32"
    if name not in DTYPES:
        raise KinemaError(f"--dtype {name!r}: choose one of {', '.join(DTYPES)}")
    if name != "float32" and torch.device(device).type == "cpu":
        click.echo(f"warning: --dtype {name} on the CPU is emulated where the CPU lacks native support: slower than "
                   "float32 and its frames differ; float32 is the CPU default", err=True)
    return getattr(torch, name)


def load_pipeline(model: str | None, device: str | None, dtype=None):
    """(pipeline on ``device``, the model folder). ``device`` None: cuda when available, else cpu."""
    from kinema.core.devices import resolve_device

    from .pipeline import KinemaVideoPipeline

    target = resolve_device(device, "--device")  # before loading: a bad device costs no load time
    model = model or os.environ.get(MODEL_ENV) or default_model()
    if not model:
        raise KinemaError(f"no model: pass --model PIPELINE_DIR (or set {MODEL_ENV}). A pipeline folder holds "
                       "model_index.json with transformer/, vae/, text_encoder/, tokenizer/, scheduler/; "
                       "`python -m kinema.sample.testing DIR` writes a tiny random one (it generates noise)")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components": noise on a command line
    kwargs = {} if dtype is None or str(dtype) == "torch.float32" else {"dtype": dtype}  # float32: as stored
    pipe = KinemaVideoPipeline.from_pretrained(model, **kwargs)
    return pipe.to(target), model


# options a sidecar fills in (name in this command -> key in the sidecar), unless given on the command line
SIDECAR_OPTIONS = {"negative_prompt": "negative_prompt", "seed": "seed", "steps": "steps", "cfg": "guidance_scale",
                   "scheduler": "scheduler", "num_frames": "num_frames", "fps": "fps", "dtype": "dtype",
                   "model": "model", "reference": "reference", "mask_strategy": "mask_strategy", "loop": "loop",
                   "condition_frame_length": "condition_frame_length", "vae_tiling": "vae_tiling",
                   "attention_cache": "attention_cache"}


def apply_sidecar(ctx: click.Context, options: dict, path: Path) -> int | None:
    """Fill ``options`` from the sidecar at ``path`` where the command line left them at their defaults, each
    value checked by its option's own type. -> the position of the sidecar's video in its batch, when the
    prompts come from the sidecar (the batch is generated again and only that video written)."""
    from .sidecar import model_fingerprint, read_sidecar

    record = read_sidecar(path)
    given = {name for name in options if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    params = {p.name: p for p in ctx.command.params}
    values = {name: record.get(key) for name, key in SIDECAR_OPTIONS.items()}
    values["resolution"] = f"{record['height']}x{record['width']}"
    values["reference"] = tuple(values["reference"] or ())
    for name, value in values.items():
        if name in given or (value is None and name != "scheduler"):
            continue
        try:
            options[name] = None if value is None else params[name].type_cast_value(ctx, value)
        except click.BadParameter as err:
            raise KinemaError(f"--from-sidecar {str(path)!r}: {name}={value!r}: {err.format_message()}") from None
    model = options["model"]
    if "model" not in given and record.get("model_hash") and Path(model).is_dir() \
            and model_fingerprint(model) != record["model_hash"]:
        click.echo(f"warning: the model folder {model} changed since {path} was written; frames will differ", err=True)
    if given & {"prompt", "prompts", "prompt_file"}:
        return None
    options["prompts"] = tuple(record["batch_prompts"])
    options["batch_size"] = len(record["batch_prompts"])
    return int(record["batch_index"])


@click.command("sample")
@click.argument("prompt", required=False)
@click.option("-p", "--prompt", "prompts", multiple=True, help="a prompt (repeatable; with --grid, one cell each)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("sample.mp4"), show_default=True,
              help="output file; .mp4, .webp or .gif (a .png with --num-frames 1); several videos get _0, _1, ...")
@click.option("--prompt-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="one prompt per line (UTF-8 text)")
@click.option("--negative-prompt", default=None, help="steer away from this text (default: the model's null caption)")
@click.option("--model", default=None,
              help=f"pipeline folder (diffusers layout); default ${MODEL_ENV}, else the built-in default model")
@click.option("--batch-size", type=BoundedInt(1, MAX_BATCH), default=1, show_default=True)
@click.option("--seed", type=BoundedInt(0, MAX_SEED), default=42, show_default=True,
              help="noise seed; batch k (from 0) uses seed + k * batch size")
@click.option("--num-frames", type=BoundedInt(1, MAX_FRAMES), default=None, help="frames per clip (pipeline default)")
@click.option("--resolution", default=None, help="table name (144p 240p 360p 480p 720p 1080p 256 512 1024) or HxW")
@click.option("--aspect-ratio", default=None,
              help="height:width as in Open-Sora (9:16 = landscape) or h/w (0.56); alone, it keeps the model's "
              "default pixel count")
@click.option("--fps", type=FiniteFloat(0, MAX_FPS, min_open=True), default=None,
              help="frame rate the model is conditioned on and the file plays at")
@click.option("--scheduler", default=None,
              help="scheduler by name: iddpm, ddim, dpm-solver, pndm, euler, euler-a, heun, unipc, ddpm "
              "(noise-predicting models), rflow (rectified-flow models), or a plugin's")
@click.option("--steps", type=BoundedInt(1, MAX_STEPS), default=None, help="sampling steps (the pipeline's default)")
@click.option("--cfg", type=FiniteFloat(0, MAX_GUIDANCE), default=None,
              help="classifier-free guidance scale (pipeline default; 1 or less: no guidance)")
@click.option("--reference", multiple=True,
              help="reference image/video; repeat or separate with ';' (ref_id counts from 0)")
@click.option("--mask-strategy", default=None,
              help='where references go: "loop,ref_id,ref_start,target_start,length,edit_ratio;..." (default "0")')
@click.option("--loop", type=BoundedInt(1, MAX_LOOP), default=1, show_default=True,
              help="clips to chain for a longer video")
@click.option("--condition-frame-length", type=BoundedInt(1, MAX_FRAMES), default=4, show_default=True,
              help="latent frames each further clip takes from the previous one")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
@click.option("--dtype", type=click.Choice(DTYPES), default=None,
              help="weights and activations (default float32; half precision on the CPU is slow and warns)")
@click.option("--vae-tiling", is_flag=True, help="decode in tiles (less memory)")
@click.option("--cpu-offload", is_flag=True, help="keep models on the CPU, each moved to the device while it runs")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each transformer block (faster steps; the first step at each size compiles)")
@click.option("--attention-cache", "attention_cache", is_flag=False, flag_value="default", default=None,
              metavar="[SPEC]", help='reuse attention outputs across steps (faster, approximate): alone for the '
              'default setting, or "spatial=2,temporal=3,cross=5,start=0.1,end=0.9"')
@click.option("--grid", is_flag=True,
              help="also write all videos side by side as one (at -o; the single videos get _0, _1, ...)")
@click.option("--overwrite", is_flag=True, help="replace videos (and sidecars) already at -o's paths")
@click.option("--from-sidecar", type=click.Path(path_type=Path), default=None,
              help="the .json written next to a video: make that video again (options given here override it)")
def sample_command(**options):
    """Generate videos from text (and reference images/videos) with a pipeline folder."""
    keep = None
    if options["from_sidecar"] is not None:
        keep = apply_sidecar(click.get_current_context(), options, options["from_sidecar"])
    run_sample(keep=keep, **options)


def run_sample(prompt, prompts, output, prompt_file, negative_prompt, model, batch_size, seed, num_frames, resolution,
               aspect_ratio, fps, scheduler, steps, cfg, reference, mask_strategy, loop, condition_frame_length,
               device, dtype, vae_tiling, cpu_offload, compile_, attention_cache, grid, overwrite, from_sidecar,
               keep=None):
    import torch
    from kinema.core.devices import resolve_device
    from kinema.core.video import write_video
    from transformers.utils import logging as hf_logging

    from . import memory
    from .attention_cache import AttentionCacheConfig
    from .grid import tile_videos
    from .references import check_reference_file
    from .sidecar import model_fingerprint, package_version, write_sidecar
    from .sizes import check_num_frames

    hf_logging.disable_progress_bar()
    # ---- checks that need no model
    prompts = read_prompts(prompt, prompt_file, prompts)
    check_output_target(output)
    cache_config = AttentionCacheConfig.parse(attention_cache) if attention_cache is not None else None
    references = [p.strip() for r in reference for p in r.split(";") if p.strip()]
    for ref in references:
        check_reference_file(ref)
    compute_device = resolve_device(device, "--device")
    dtype_value = torch_dtype(dtype, compute_device)

    # ---- the model, then the checks that need its configs
    pipe, model = load_pipeline(model, "cpu" if cpu_offload else device, dtype_value)
    if pipe.config.random_init:
        click.echo(f"warning: {model} is a randomly initialised test pipeline: its videos are noise", err=True)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)  # without a GPU or --device: a message, not a slow no-op
    if vae_tiling:
        pipe.enable_vae_tiling()
    if scheduler:
        pipe.set_scheduler(scheduler)
    table_name, height, width = parse_resolution(resolution)
    height, width = pipe.resolve_size(height, width, table_name, aspect_ratio)
    d = pipe.defaults
    frames_per_clip = num_frames or d["num_frames"]
    check_num_frames(frames_per_clip, pipe.vae.temporal_compression)
    guidance = float(d["guidance_scale"] if cfg is None else cfg)
    batch = min(batch_size, len(prompts))
    memory.check_fits(pipe, compute_device, "this request", batch, frames_per_clip, height, width, guidance > 1,
                      vae_tiling, loop)
    written = [keep] if keep is not None else list(range(len(prompts)))
    paths = output_paths(output, len(written), frames_per_clip, numbered=grid, overwrite=overwrite)
    if compile_:
        pipe.compile_transformer()
    if cache_config is not None:
        pipe.enable_attention_cache(cache_config)

    record = {"negative_prompt": negative_prompt, "steps": int(steps or d["num_inference_steps"]),
              "guidance_scale": guidance, "scheduler": scheduler, "scheduler_class": type(pipe.scheduler).__name__,
              "height": height, "width": width, "num_frames": frames_per_clip, "loop": loop,
              "condition_frame_length": condition_frame_length,
              "reference": [str(Path(r).resolve()) for r in references],
              "mask_strategy": mask_strategy, "vae_tiling": vae_tiling, "attention_cache": attention_cache,
              "dtype": str(dtype_value).removeprefix("torch."), "device": str(compute_device),
              "model": str(Path(model).resolve()), "model_hash": model_fingerprint(model),
              "kinema_sample_version": package_version()}
    videos, cells = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        # one generator per batch: a batch (and so each video's sidecar) reproduces without the batches before it
        batch_seed = seed + start if keep is None else seed
        generator = torch.Generator(device="cpu").manual_seed(batch_seed % (MAX_SEED + 1))
        result = pipe(chunk, negative_prompt=negative_prompt, num_frames=frames_per_clip, height=height, width=width,
                      fps=fps, num_inference_steps=steps, guidance_scale=cfg, generator=generator,
                      reference=references or None, mask_strategy=mask_strategy, loop=loop,
                      condition_frame_length=condition_frame_length, output_type="uint8")
        for i, frames in enumerate(result.frames):
            if keep is not None and i != keep:
                continue
            path = write_video(paths[len(videos)], frames, fps=result.fps)
            write_sidecar(path, {**record, "video": path.name, "prompt": chunk[i], "batch_prompts": chunk,
                                 "batch_index": i, "seed": batch_seed % (MAX_SEED + 1), "fps": result.fps})
            videos.append(path)
            cells.append(frames)
            click.echo(f"wrote {path} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]})")
    if grid:
        path = write_video(paths[0].with_name(output.name).with_suffix(paths[0].suffix), tile_videos(cells),
                           fps=result.fps)
        write_sidecar(path, {"video": path.name, "grid": [p.name for p in videos], "prompts": prompts})
        click.echo(f"wrote {path} (grid of {len(videos)})")
