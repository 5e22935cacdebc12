"""`kinema demo`: a local web page for a pipeline, laid out like Open-Sora 1.1's Gradio demo.

Prompt, optional reference image (image-to-video, mask_strategy "0"), resolution and aspect ratio from the
pipeline's size tables, frames, steps, guidance scale and seed; "Generate video" plays an mp4 in the page,
"Generate image" shows a single frame. Every result is also kept in the output folder.

    kinema demo --model PIPELINE_DIR                 # http://127.0.0.1:7860
    python -m kinema.sample.demo --model PIPELINE_DIR

gradio is an optional extra (``pip install "kinema-sample[demo]"``) and is imported only here.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click
from kinema.core import KinemaError

from kinema.core.validate import check_number

from . import memory
from .cli import MAX_GUIDANCE, MAX_STEPS, MODEL_ENV, load_pipeline
from .sizes import ASPECT_RATIOS

INSTALL_HINT = 'pip install "kinema-sample[demo]"'
PIPELINE_DEFAULT_SIZE = "default"
# Open-Sora writes aspect ratios height:width, so 9:16 is landscape
ASPECT_CHOICES = [("9:16 landscape", "9:16"), ("16:9 portrait", "16:9"), ("3:4 landscape", "3:4"),
                  ("4:3 portrait", "4:3"), ("1:1 square", "1:1")]
MAX_FRAMES = 128  # Open-Sora 1.1's demo goes to 16 s = 128 frames at 24 fps // 3
MAX_SEED = 2**31 - 1


def import_gradio():
    try:
        import gradio
    except ImportError as err:
        raise KinemaError(f"`kinema demo` needs gradio, which is not installed ({err}); install it with: "
                       f"{INSTALL_HINT}") from err
    return gradio


# ------------------------------------------------------------------ choices offered by the pipeline


def resolution_choices(pipe) -> list[tuple[str, str]]:
    """(label, value) pairs: the pipeline's own default size first (when it has one), then the video tables."""
    choices = []
    d = pipe.defaults
    if d.get("height") and d.get("width"):
        choices.append((f"pipeline default ({d['height']}x{d['width']})", PIPELINE_DEFAULT_SIZE))
    choices += [(name, name) for name in ASPECT_RATIOS if name.endswith("p")]
    return choices


def default_resolution(pipe) -> str:
    d = pipe.defaults
    return PIPELINE_DEFAULT_SIZE if d.get("height") and d.get("width") else d["resolution"]


def frame_range(pipe) -> tuple[int, int, int]:
    """(minimum, maximum, step) of video lengths the VAE accepts: any count, or 1 + k * temporal compression."""
    tc = 1 if pipe.vae is None else pipe.vae.temporal_compression  # no VAE: the pipeline takes latents
    if tc > 1:
        return 1 + tc, 1 + MAX_FRAMES, tc
    return 2, MAX_FRAMES, 1


def output_size(pipe, resolution: str, aspect_ratio: str) -> tuple[int, int]:
    if resolution == PIPELINE_DEFAULT_SIZE:
        return pipe.resolve_size(None, None, None, None)
    return pipe.resolve_size(None, None, resolution, aspect_ratio)


# ------------------------------------------------------------------ generation (no gradio here)


@dataclass
class Request:
    prompt: str
    reference: str | None
    resolution: str
    aspect_ratio: str
    num_frames: int
    steps: int
    guidance_scale: float
    seed: int


class Generator:
    """Runs the pipeline for the page, one request at a time, and writes each result to ``output_dir``."""

    def __init__(self, pipe, output_dir: str | Path):
        self.pipe = pipe
        self.output_dir = Path(output_dir)
        self._lock = threading.Lock()  # the models are shared: never run two requests at once
        self._counter = itertools.count()

    def __call__(self, request: Request, image: bool) -> tuple[Path, str]:
        """-> (the mp4 or png written, a one-line summary)."""
        import torch
        from kinema.core.video import write_video

        if not request.prompt or not request.prompt.strip():
            raise KinemaError("type a prompt first")
        height, width = output_size(self.pipe, request.resolution, request.aspect_ratio)
        # the page's sliders bound these, but its API takes any value
        num_frames = 1 if image else check_number(request.num_frames, "frames", minimum=1, maximum=MAX_FRAMES + 1,
                                                  integer=True)
        seed = check_number(request.seed, "seed", minimum=0, maximum=MAX_SEED, integer=True)
        steps = check_number(request.steps, "sampling steps", minimum=1, maximum=MAX_STEPS, integer=True)
        guidance = check_number(request.guidance_scale, "guidance scale", minimum=0, maximum=MAX_GUIDANCE)
        memory.check_fits(self.pipe, self.pipe._execution_device, "this request", 1, num_frames, height, width,
                          guidance > 1, vae_tiling=bool(getattr(self.pipe.vae, "use_tiling", False)),
                          fix="pick a smaller resolution or fewer frames")
        reference = request.reference or None
        start = time.perf_counter()
        with self._lock:
            result = self.pipe(
                request.prompt.strip(), num_frames=num_frames, height=height, width=width,
                num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator(device="cpu").manual_seed(seed),
                reference=reference, mask_strategy="0" if reference else None, output_type="uint8",
            )
        frames = result.frames[0]
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter):03d}-seed{seed}"
        path = write_video(self.output_dir / f"{stem}{'.png' if image else '.mp4'}", frames, fps=result.fps)
        what = "image" if image else f"{frames.shape[0]} frames at {result.fps:g} fps"
        cond = ", conditioned on the reference image" if reference else ""
        summary = (f"{what}, {width}x{height}{cond}, {steps} steps, guidance {guidance:g}, "
                   f"seed {seed}; {time.perf_counter() - start:.1f} s; saved to {path}")
        return path, summary


# ------------------------------------------------------------------ the page


def build_demo(pipeline, output_dir: str | Path = "outputs"):
    """A ``gradio.Blocks`` page for a pipeline object or a pipeline folder; call ``.launch()`` on it."""
    gr = import_gradio()
    if isinstance(pipeline, (str, Path)):
        pipe, _ = load_pipeline(str(pipeline), None)
    else:
        pipe = pipeline
    pipe.set_progress_bar_config(disable=False)
    generate = Generator(pipe, output_dir)
    d = pipe.defaults
    min_frames, max_frames, frame_step = frame_range(pipe)
    default_frames = min(max(int(d["num_frames"]), min_frames), max_frames)
    default_steps = int(pipe.defaults["num_inference_steps"])

    def describe_size(resolution, aspect_ratio):
        try:
            height, width = output_size(pipe, resolution, aspect_ratio)
        except KinemaError as err:
            return f"⚠ {err}"
        return f"Output size: **{width}x{height}** (width x height)"

    def on_resolution(resolution, aspect_ratio):
        table = resolution != PIPELINE_DEFAULT_SIZE
        return gr.update(interactive=table), describe_size(resolution, aspect_ratio)

    def run(image: bool, prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed):
        request = Request(prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed)
        try:
            path, summary = generate(request, image=image)
        except KinemaError as err:
            raise gr.Error(str(err)) from err
        video = gr.update(value=None if image else str(path), visible=not image)
        still = gr.update(value=str(path) if image else None, visible=image)
        return video, still, summary

    # gradio reads each handler's signature: the inputs by position, and a Progress default to show tqdm bars
    def run_video(prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed,
                  progress=gr.Progress(track_tqdm=True)):
        return run(False, prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed)

    def run_image(prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed,
                  progress=gr.Progress(track_tqdm=True)):
        return run(True, prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed)

    with gr.Blocks(title="kinema demo", analytics_enabled=False) as demo:
        gr.Markdown("# kinema: text to video\nOpen-Sora 1.1 style sampling. A reference image makes the video start "
                    "from it (image-to-video, mask strategy \"0\").")
        if pipe.config.random_init:
            gr.Markdown("**This is a randomly initialised test pipeline: what it generates is noise.**")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=4, placeholder="a red car driving along a beach at sunset",
                                    elem_id="prompt")
                reference = gr.Image(label="Reference image (optional: image-to-video)", type="filepath",
                                     format="png", sources=["upload", "clipboard"], elem_id="reference")
                resolution = gr.Radio(resolution_choices(pipe), value=default_resolution(pipe), label="Resolution",
                                      elem_id="resolution")
                aspect_ratio = gr.Radio(ASPECT_CHOICES, value="9:16", label="Aspect ratio (height:width)",
                                        interactive=default_resolution(pipe) != PIPELINE_DEFAULT_SIZE,
                                        elem_id="aspect-ratio")
                size_note = gr.Markdown(describe_size(default_resolution(pipe), "9:16"), elem_id="size-note")
                num_frames = gr.Slider(min_frames, max_frames, value=default_frames, step=frame_step,
                                       label=f"Frames (video plays at {d['fps']:g} fps)", elem_id="num-frames")
                steps = gr.Slider(1, 200, value=default_steps, step=1, label="Sampling steps", elem_id="steps")
                guidance_scale = gr.Slider(0.0, 10.0, value=float(d["guidance_scale"]), step=0.1,
                                           label="Guidance scale (CFG)", elem_id="guidance-scale")
                seed = gr.Number(value=1024, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
                with gr.Row():
                    image_button = gr.Button("Generate image", elem_id="generate-image")
                    video_button = gr.Button("Generate video", variant="primary", elem_id="generate-video")
            with gr.Column():
                video = gr.Video(label="Video", autoplay=True, loop=True, interactive=False, elem_id="output-video")
                still = gr.Image(label="Image", interactive=False, visible=False, elem_id="output-image")
                status = gr.Markdown(elem_id="status")

        resolution.change(on_resolution, [resolution, aspect_ratio], [aspect_ratio, size_note])
        aspect_ratio.change(describe_size, [resolution, aspect_ratio], size_note)
        inputs = [prompt, reference, resolution, aspect_ratio, num_frames, steps, guidance_scale, seed]
        outputs = [video, still, status]
        # one queue for both buttons: the pipeline runs one request at a time
        video_button.click(run_video, inputs, outputs, concurrency_limit=1, concurrency_id="generate")
        image_button.click(run_image, inputs, outputs, concurrency_limit=1, concurrency_id="generate")
    return demo


# ------------------------------------------------------------------ command


@click.command("demo")
@click.option("--model", default=None, help=f"pipeline folder (diffusers layout; default ${MODEL_ENV})")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; 0.0.0.0 makes the page reachable from other machines")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--share/--no-share", default=False, show_default=True,
              help="also publish the page through a public gradio.live link")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs"),
              show_default=True, help="every generated video and image is kept here")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
def demo_command(model, host, port, share, output_dir, device):
    """Serve a local web page to generate videos and images with a pipeline (needs kinema-sample[demo])."""
    try:
        serve(model, host, port, share, output_dir, device)
    except KinemaError as err:  # also a one-line message under `python -m kinema.sample.demo`
        raise click.ClickException(str(err)) from None


def check_port_free(host: str, port: int) -> None:
    """Fail before loading the models (minutes for a full-size pipeline), not after."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except OSError as err:
        raise KinemaError(f"cannot serve on {host}:{port} ({err.strerror or err}); the port is taken or the address "
                       "is not this machine's: pick another with --port or --host") from None


def serve(model, host: str, port: int, share: bool, output_dir: Path, device: str | None) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls from a local tool
    import_gradio()
    check_port_free(host, port)
    pipe, model = load_pipeline(model, device)
    if pipe.config.random_init:
        click.echo(f"warning: {model} is a randomly initialised test pipeline: its videos are noise", err=True)
    demo = build_demo(pipe, output_dir)
    click.echo(f"kinema demo: {model} on http://{host}:{port} (results kept in {output_dir}); Ctrl+C stops it")
    if share:
        click.echo("warning: --share publishes this page on a public gradio.live address", err=True)
    try:
        demo.launch(server_name=host, server_port=port, share=share, inbrowser=False, show_error=True)
    except OSError as err:
        raise KinemaError(f"cannot serve on {host}:{port} ({err}); pick another with --port") from err


if __name__ == "__main__":
    demo_command()
