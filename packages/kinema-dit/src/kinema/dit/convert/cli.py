"""`kinema dit convert --format FORMAT SRC -o OUT_DIR`: upstream checkpoint -> diffusers-layout kinema model folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kinema.core import KinemaError

from . import FORMATS, convert


def parse_override(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it parses (17, 0.5, true, [1,2,2]), else as a plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise KinemaError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@click.group("dit")
def dit() -> None:
    """Diffusion transformer tools (kinema-dit)."""


@dit.command("convert")
@click.option("--format", "fmt", required=True, type=click.Choice(sorted(FORMATS)),
              help="layout of SRC: " + "; ".join(f"{k}: {v.description}" for k, v in sorted(FORMATS.items())))
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path),
              help="folder to write (config.json + diffusion_pytorch_model.safetensors)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="model config value, repeatable (e.g. --set video_length=17 --set space_scale=0.5)")
@click.option("--target", type=click.Choice(["stdit", "stdit2"]), default=None,
              help="model a PixArt checkpoint initialises (--format pixart only; default stdit)")
@click.option("--overwrite", is_flag=True, help="replace OUT_DIR if it exists (only once the new one is written)")
def convert_command(fmt, src, out_dir, overrides, target, overwrite) -> None:
    """Convert an upstream checkpoint SRC (file or folder) into a kinema model folder."""
    kwargs = dict(parse_override(o) for o in overrides)
    out = convert(fmt, src, out_dir, overwrite=overwrite, target=target, **kwargs)
    click.echo(f"wrote {out}")
