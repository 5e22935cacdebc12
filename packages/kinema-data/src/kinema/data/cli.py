"""``kinema data``: table operations and the curation stages, in pipeline order.

    kinema data convert VIDEOS/ -o raw.csv            # folder -> table (path)
    kinema data info raw.csv -o info.csv              # frames, size, fps
    kinema data scenes info.csv -o scenes.csv         # scene detection (PySceneDetect)
    kinema data cut scenes.csv -o clips.csv --save-dir clips/
    kinema data score flow clips.csv -o flow.csv      # flow | ocr | blur | cmotion | aesthetic | match
    kinema data caption template flow.csv -o captioned.csv
    kinema data filter captioned.csv -o train.csv --flowmin 0.5 --drop-errors

Every stage takes --workers, --shard i/N, --save-every and --retry-errors; it resumes when its
output exists and exits with status 3 when some rows failed (they are kept with their error).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kinema.core import KinemaError, lookup
from kinema.core.shapes import SHAPES
from kinema.core.validate import MAX_SEED, BoundedInt, FiniteFloat

from . import filters, synthetic
from .runner import Terminated, run_stage
from .stage import Stage
from .table import (
    folder_to_table,
    merge_tables,
    parse_shard,
    read_table,
    shard_suffix,
    shard_table,
    write_table,
)

PARTIAL_EXIT = 3  # some rows failed; the others are done and saved

# Upper bounds: far above any real use, low enough that a typo fails in the parser, not hours later.
MAX_WORKERS = 1024
MAX_ROWS = 10**9  # rows between saves, samples per shard
MAX_PARTS = 10_000  # table parts written by `split`
MAX_FRAMES = 100_000
MAX_PIXELS_SIDE = 16_384
MAX_SECONDS = 10**7


@click.group("data")
def data() -> None:
    """Curate video data: tables, scene split, scores, captions, filters, shards, synthetic set."""


def _default_output(source: str, tag: str, shard: tuple[int, int] | None) -> Path:
    source = Path(source)
    name = f"{source.stem}_{tag}" + (f"_{shard_suffix(*shard)}" if shard else "")
    return source.with_name(name + source.suffix)


def stage_options(func):
    options = [
        click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output table (.csv / .parquet)."),
        click.option("--workers", type=BoundedInt(1, MAX_WORKERS), default=None,
                     help="Processes (default: all cores)."),
        click.option("--shard", default=None, metavar="i/N", help="Process only block i of N (for clusters)."),
        click.option("--save-every", type=BoundedInt(1, MAX_ROWS), default=50, show_default=True,
                     help="Rows between atomic saves."),
        click.option("--retry-errors", is_flag=True, help="Re-process rows that failed in an earlier run."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_cli_stage(stage: Stage, source: str, output, workers, shard, save_every, retry_errors, no_progress) -> None:
    shard = parse_shard(shard)
    output = Path(output) if output else _default_output(source, stage.name, shard)
    if output.resolve() == Path(source).resolve():
        # the output doubles as the resume state: as the input, it would count every row as done
        raise KinemaError(f"-o {str(output)!r} is the input table; a stage writes a new table (it resumes from "
                          "its output): choose another -o, e.g. the default next to the input")
    table = read_table(source)
    if shard:
        table = shard_table(table, *shard)
    try:
        report = run_stage(stage, table, output, workers=workers, save_every=save_every,
                           retry_errors=retry_errors, progress=not no_progress)
    except Terminated:
        click.echo(f"stopped by SIGTERM; the finished rows are saved in {output} (run the same command to resume)",
                   err=True)
        raise
    click.echo(report.summary())
    if report.partial:
        click.echo(f"partial success: {report.errors} row(s) failed; see column {stage.error_column!r}", err=True)
        sys.exit(PARTIAL_EXIT)


# ----------------------------------------------------------------------------- table operations


@data.command("convert")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--images", is_flag=True, help="Also collect image files.")
def convert_command(source, output, images):
    """A folder of videos -> table of paths; or a table -> the other format (csv <-> parquet)."""
    table = folder_to_table(source, images) if Path(source).is_dir() else read_table(source, require=())
    write_table(table, output)
    click.echo(f"{len(table)} rows -> {output}")


@data.command("info")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@stage_options
def info_command(source, **opts):
    """Add num_frames, height, width, aspect_ratio, fps, resolution."""
    from .info import VideoInfoStage

    run_cli_stage(VideoInfoStage(), source, **opts)


@data.command("filter")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@click.option("--fmin", type=BoundedInt(0, MAX_ROWS), help="Keep num_frames >= this.")
@click.option("--fmax", type=BoundedInt(0, MAX_ROWS), help="Keep num_frames <= this.")
@click.option("--hwmax", type=BoundedInt(0, MAX_PIXELS_SIDE**2), help="Keep resolution (h*w) <= this.")
@click.option("--aesmin", type=FiniteFloat(), help="Keep aesthetic score >= this (1-10).")
@click.option("--matchmin", type=FiniteFloat(), help="Keep caption-video match >= this (100 * cosine).")
@click.option("--flowmin", type=FiniteFloat(0), help="Keep mean flow >= this (pixels).")
@click.option("--flowmax", type=FiniteFloat(0), help="Keep mean flow <= this (pixels).")
@click.option("--ocrmax", type=FiniteFloat(0, 1), help="Keep text-area ratio <= this.")
@click.option("--blurmin", type=FiniteFloat(0), help="Keep sharpness >= this.")
@click.option("--cmotion", multiple=True, help="Keep these camera-motion labels (repeatable).")
@click.option("--drop-errors", is_flag=True, help="Drop rows any stage failed on.")
@click.option("--ext", is_flag=True, help="Drop rows whose file does not exist.")
@click.option("--remove-empty-caption", is_flag=True)
@click.option("--remove-url", is_flag=True)
@click.option("--remove-path-duplication", is_flag=True)
@click.option("--remove-text-duplication", is_flag=True)
@click.option("--refine-llm-caption", is_flag=True)
@click.option("--clean-caption", is_flag=True)
@click.option("--merge-cmotion", is_flag=True, help="Append the camera-motion sentence to captions.")
@click.option("--relpath", type=click.Path(file_okay=False))
@click.option("--abspath", type=click.Path(file_okay=False))
@click.option("--train-column", is_flag=True, help="Keep only the columns training needs.")
def filter_command(source, output, **opts):
    """Filter rows and edit captions (upstream datautil's options)."""
    table = read_table(source)
    before = len(table)
    table, tags = filters.apply(table, **opts)
    output = Path(output) if output else _default_output(source, "_".join(tags) or "copy", None)
    write_table(table, output)
    click.echo(f"{before} -> {len(table)} rows -> {output}")


@data.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--join", is_flag=True, help="Combine columns on 'path' instead of stacking rows.")
def merge_command(sources, output, join):
    """Stack tables (e.g. shard parts, in the order given) or join their columns on path."""
    table = merge_tables([read_table(s) for s in sources], join=join)
    write_table(table, output)
    click.echo(f"{len(sources)} tables, {len(table)} rows -> {output}")


@data.command("split")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-n", "--num-parts", type=BoundedInt(1, MAX_PARTS), required=True)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Default: next to the input.")
def split_command(source, num_parts, output_dir):
    """Split a table into N contiguous parts (merged in order they give the table back)."""
    table = read_table(source)
    src = Path(source)
    folder = Path(output_dir) if output_dir else src.parent
    for i in range(num_parts):
        out = folder / f"{src.stem}_{shard_suffix(i, num_parts)}{src.suffix}"
        write_table(shard_table(table, i, num_parts), out)
        click.echo(str(out))


# ----------------------------------------------------------------------------- stages


@data.command("scenes")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--detector", default="adaptive", show_default=True,
              type=click.Choice(["adaptive", "content", "threshold", "hash", "histogram"]))
@click.option("--threshold", type=FiniteFloat(0),
              help="Detector threshold (adaptive: adaptive_threshold, default 3.0).")
@click.option("--min-scene-len", type=BoundedInt(1, MAX_FRAMES), default=15, show_default=True, help="In frames.")
@stage_options
def scenes_command(source, detector, threshold, min_scene_len, **opts):
    """Detect scenes (PySceneDetect; upstream: AdaptiveDetector, threshold 3.0)."""
    from .scenes import SceneDetectStage

    run_cli_stage(SceneDetectStage(detector, threshold, min_scene_len), source, **opts)


@data.command("cut")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--save-dir", required=True, type=click.Path(file_okay=False))
@click.option("--min-seconds", type=FiniteFloat(0, MAX_SECONDS), help="Skip shorter scenes.")
@click.option("--max-seconds", type=FiniteFloat(0, MAX_SECONDS, min_open=True),
              help="Keep at most the first N seconds of a scene.")
@click.option("--short-side", type=BoundedInt(0, MAX_PIXELS_SIDE), default=720, show_default=True,
              help="Downscale so the short side <= this (0: keep the size).")
@click.option("--backend", type=click.Choice(["pyav", "ffmpeg"]), default="pyav", show_default=True)
@stage_options
def cut_command(source, save_dir, min_seconds, max_seconds, short_side, backend, **opts):
    """Cut each video into one mp4 per detected scene (frame-exact)."""
    from .scenes import SceneCutStage

    run_cli_stage(SceneCutStage(save_dir, min_seconds, max_seconds, short_side, backend), source, **opts)


def _parse_options(pairs: tuple[str, ...]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise KinemaError(f"option {pair!r}: write it as key=value")
        key, value = pair.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        options[key.replace("-", "_")] = value
    return options


def _build(kind: str, name: str, options: dict) -> Stage:
    factory = lookup(kind, name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise KinemaError(f"{kind} {name!r}: bad option ({exc})") from None


@data.command("score")
@click.argument("scorer")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--clip", help="CLIP model folder (aesthetic, match).")
@click.option("--head", help="Aesthetic MLP head weights (aesthetic).")
@click.option("-O", "--option", "extra", multiple=True, metavar="KEY=VALUE", help="Scorer option (repeatable).")
@stage_options
def score_command(scorer, source, clip, head, extra, **opts):
    """Add a score column: flow, ocr, blur, cmotion, aesthetic, match (or a plugin's scorer)."""
    options = _parse_options(extra)
    if clip:
        options["clip"] = clip
    if head:
        options["head"] = head
    run_cli_stage(_build("scorer", scorer, options), source, **opts)


@data.command("caption")
@click.argument("captioner")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--template", help="Template captioner: a format string over the row's columns.")
@click.option("--model", help="Model folder (image-text-to-text).")
@click.option("-O", "--option", "extra", multiple=True, metavar="KEY=VALUE", help="Captioner option (repeatable).")
@stage_options
def caption_command(captioner, source, template, model, extra, **opts):
    """Fill the text column: template, image-text-to-text (or a plugin's captioner)."""
    options = _parse_options(extra)
    if template:
        options["template"] = template
    if model:
        options["model"] = model
    run_cli_stage(_build("captioner", captioner, options), source, **opts)


# ----------------------------------------------------------------------------- training data


@data.command("synth")
@click.option("-n", "--num-videos", type=BoundedInt(1, synthetic.MAX_VIDEOS), required=True)
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--seed", type=BoundedInt(0, MAX_SEED), default=0, show_default=True)
@click.option("--size", type=BoundedInt(16, synthetic.MAX_SIZE), default=32, show_default=True,
              help="Frame height and width.")
@click.option("--frames", "num_frames", type=BoundedInt(2, synthetic.MAX_FRAMES), default=16, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["mp4", "webp", "gif"]), default="mp4", show_default=True)
@click.option("--exclude", multiple=True, metavar="COLOUR:SHAPE:DIRECTION",
              help="Never draw this combination (repeatable; held out to test generalisation).")
@click.option("--shape", "shapes", multiple=True, type=click.Choice(SHAPES),
              help="Draw only this shape (repeatable; default: every shape).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def synth_command(num_videos, output_dir, seed, size, num_frames, fmt, exclude, shapes, no_progress):
    """Write the synthetic coloured-shapes set: clips + meta.csv with captions and ground truth."""
    table_path = synthetic.write_dataset(num_videos, output_dir, seed=seed, size=size, num_frames=num_frames,
                                         ext=fmt, exclude=exclude, shapes=shapes or None, progress=not no_progress)
    click.echo(f"{num_videos} clips -> {table_path}")


@data.command("shards")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--max-count", type=BoundedInt(1, MAX_ROWS), default=1000, show_default=True,
              help="Samples per shard.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def shards_command(source, output_dir, max_count, no_progress):
    """Pack clips + captions into webdataset tar shards."""
    from .shards import write_clip_shards

    shards = write_clip_shards(read_table(source, require=("path", "text")), output_dir, max_count=max_count,
                               progress=not no_progress)
    click.echo(f"{len(shards)} shard(s) -> {output_dir}")


@data.command("precompute")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--vae", "vae_path", required=True, type=click.Path(exists=True, file_okay=False),
              help="VAE folder (save_pretrained) that encodes the clips.")
@click.option("--vae-type", default="causal-video-vae", show_default=True, help="Registered VAE name.")
@click.option("--text-encoder", default="minilm", show_default=True, help="Registered text encoder name.")
@click.option("--text-max-length", type=BoundedInt(1, 65_536), default=None,
              help="Tokens per caption (text encoder default).")
@click.option("--num-frames", type=BoundedInt(1, MAX_FRAMES), default=16, show_default=True)
@click.option("--image-size", type=BoundedInt(2, MAX_PIXELS_SIDE), nargs=2, default=(256, 256), show_default=True,
              metavar="H W")
@click.option("--batch-size", type=BoundedInt(1, 65_536), default=32, show_default=True)
@click.option("--max-count", type=BoundedInt(1, MAX_ROWS), default=1000, show_default=True,
              help="Samples per shard.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def precompute_command(source, output_dir, vae_path, vae_type, text_encoder, text_max_length, num_frames, image_size,
                       batch_size, max_count, no_progress):
    """Encode clips (VAE latents, posterior mode) and captions once into feature shards for training."""
    import torch

    from .precompute import precompute_features

    vae = lookup("vae", vae_type).from_pretrained(vae_path).eval()
    encoder = lookup("text_encoder", text_encoder)(**({"max_length": text_max_length} if text_max_length else {}))

    def encode_text(texts):
        encoded = encoder.encode(texts)
        return encoded.y[:, 0], encoded.mask

    with torch.no_grad():
        shards = precompute_features(read_table(source, require=("path", "text")),
                                     lambda video: vae.encode_video(video, sample=False), encode_text, output_dir,
                                     num_frames=num_frames, image_size=tuple(image_size), batch_size=batch_size,
                                     max_count=max_count, progress=not no_progress)
    click.echo(f"{len(shards)} shard(s) -> {output_dir}")
