"""`kinema train CONFIG [key=value ...] [--check]` and `kinema train-export CHECKPOINT OUT`."""

from __future__ import annotations

import click


@click.command("train", context_settings={"ignore_unknown_options": True})
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--check", is_flag=True,
              help="Resolve every registered name and check every path, print the effective config (YAML) and "
                   "exit without training.")
@click.option("--print-config", is_flag=True,
              help="Print the effective config (every default filled in, overrides applied) as YAML and exit.")
def train_command(config: str, overrides: tuple[str, ...], check: bool, print_config: bool) -> None:
    """Train a model from CONFIG (YAML), with key.sub=value overrides.

    One process: `kinema train CONFIG`. Several: `torchrun --nproc_per_node N -m kinema.train CONFIG`.

    \b
    Config sections (keys and defaults: kinema-train's README, section "Config", or --print-config):
      task          diffusion (default) or vae
      model         the video model: name, kwargs, pretrained, attention, compile, ...
      vae           the frozen VAE (diffusion) or the VAE to train (task vae)
      text_encoder  the frozen text encoder
      scheduler     the training objective: iddpm, rflow
      data          source (synthetic, table, features), path, clip size, batch size, holdout, ...
      optim         lr, betas, weight decay, clipping, EMA, steps, schedule, seed, precision
      parallel      tensor, sequence and data parallelism
      checkpoint    run folder (dir), every, keep, resume
      logging       csv, progress, tensorboard, wandb, eval_every, sample_every, sample prompts
      vae_loss      task vae: KL weight, reconstruction, perceptual, discriminator, latent noise
    """
    from .config import load_config

    if print_config:
        from .check import effective_yaml

        click.echo(effective_yaml(load_config(config, list(overrides))), nl=False)
        return
    if check:
        _check(config, list(overrides))
        return
    from .trainer import run

    cfg = load_config(config, list(overrides))
    trainer = run(cfg)
    if trainer.ctx.is_main:
        click.echo(f"trained to step {trainer.step}; checkpoints in {cfg.checkpoint.dir}")


def _check(config: str, overrides: list[str]) -> None:
    from .check import check_config, effective_yaml
    from .config import load_config

    cfg = load_config(config, overrides, validated=False)  # value problems are reported with the others
    problems = check_config(cfg)
    if problems:
        for problem in problems:
            click.echo(f"Error: {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(effective_yaml(cfg), nl=False)
    if cfg.task == "vae":
        source = cfg.vae.pretrained or "a CausalVideoVAE from vae.kwargs"
        click.echo(f"# check passed: task vae, training {source} on {cfg.data.source} clips")
        return
    click.echo(f"# check passed: model {cfg.model.name}, vae {cfg.vae.name}, text encoder {cfg.text_encoder.name}, "
               f"objective {cfg.scheduler.name}")


@click.command("train-export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("output", type=click.Path(file_okay=False))
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--text-encoder-by-name", is_flag=True,
              help="Name the registered text encoder in model_index.json instead of copying its weights.")
@click.option("--default", "defaults", multiple=True, metavar="KEY=VALUE",
              help="Sampling default of the pipeline (num_frames, height, width, fps, guidance_scale, ...).")
@click.option("--vae", "vae_folder", type=click.Path(exists=True, file_okay=False),
              help="Ship this VAE instead of the one the checkpoint was trained with; it must compute the same "
                   "latents (a decoder retrained with `kinema vae train --decoder-only`).")
def export_command(checkpoint: str, output: str, weights: str, text_encoder_by_name: bool,
                   defaults: tuple[str, ...], vae_folder: str | None) -> None:
    """Write a training CHECKPOINT (a step-* folder) as a pipeline folder that `kinema sample --model` loads."""
    from .config import parse_override
    from .export import export_pipeline

    values = {}
    for item in defaults:
        key, value = parse_override(item)
        values[".".join(key)] = value
    path = export_pipeline(checkpoint, output, weights=weights, text_encoder_by_name=text_encoder_by_name,
                           defaults=values, vae=vae_folder)
    click.echo(f"wrote {path}")
