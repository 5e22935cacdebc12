"""Prompt adherence: sample N prompts of the synthetic vocabulary, read the videos back with the shapes
analyser of ``kinema.core.shapes`` (colour, shape, direction from pixels) and count how often they match the
prompt.

    kinema eval adherence                              # the built-in default model, 100 prompts
    kinema eval adherence --model DIR -n 40 --seed 1 --holdout-only --csv adherence.csv

Prompts cover colour x shape x direction; the combinations in ``HELD_OUT`` were never drawn when
the default model was trained (``kinema data synth --exclude``), so their rows measure how the model
composes words it has only seen apart.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

import click

from kinema.core import KinemaError
from kinema.core.validate import MAX_SEED, BoundedInt, FiniteFloat

from .cli import MAX_BATCH, MAX_GUIDANCE, MAX_STEPS

ATTRIBUTES = ("colour", "shape", "direction")

# colour:shape:direction combinations kept out of the default model's training set: every colour and
# direction at least once, every shape at least twice
HELD_OUT = (
    "red:circle:left",
    "orange:square:up",
    "yellow:triangle:right",
    "green:circle:down",
    "cyan:square:left",
    "blue:triangle:up",
    "purple:circle:right",
    "white:square:down",
)
PHRASINGS = ("short", "caption")


@dataclass(frozen=True)
class PromptCase:
    prompt: str
    colour: str
    shape: str
    direction: str
    held_out: bool


def short_prompt(colour: str, shape: str, direction: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} moving {direction}"


def make_prompts(n: int, seed: int = 0, held_out=HELD_OUT, holdout_only: bool = False,
                 phrasing: str = "short") -> list[PromptCase]:
    """``n`` prompts: a quarter (all when ``holdout_only``) cycle through the held-out combinations, the
    rest draw seen ones. ``phrasing``: ``short`` ("a red circle moving right") or ``caption`` (the
    synthetic set's own caption templates, with speed and size words)."""
    from kinema.core.shapes import COLOURS, DIRECTIONS, SHAPES, caption, parse_combinations, random_spec

    if phrasing not in PHRASINGS:
        raise KinemaError(f"unknown phrasing {phrasing!r}; choose {', '.join(PHRASINGS)}")
    if n < 1:
        raise KinemaError(f"-n must be >= 1, got {n}")
    held = sorted(parse_combinations(held_out))
    if holdout_only and not held:
        raise KinemaError("--holdout-only needs held-out combinations")
    seen = [(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS if (c, s, d) not in set(held)]
    rng = random.Random(f"adherence-{seed}")
    n_held = n if holdout_only else (n // 4 if held else 0)
    combos = [held[i % len(held)] for i in range(n_held)] + [rng.choice(seen) for _ in range(n - n_held)]
    cases = []
    for colour, shape, direction in combos:
        if phrasing == "short":
            text = short_prompt(colour, shape, direction)
        else:
            spec = random_spec(rng)
            spec = type(spec)(colour, shape, direction, spec.speed, spec.size, spec.start)
            text = caption(spec, rng)
        cases.append(PromptCase(text, colour, shape, direction, (colour, shape, direction) in set(held)))
    return cases


def score_videos(cases: list[PromptCase], videos) -> list[dict]:
    """One row per prompt: the asked and the analysed attributes, and whether each matches."""
    from kinema.core.shapes import analyse

    rows = []
    for case, frames in zip(cases, videos):
        found = analyse(frames)
        row = {"prompt": case.prompt, "held_out": case.held_out}
        for key in ATTRIBUTES:
            asked, got = getattr(case, key), found[key]
            row.update({key: asked, f"{key}_found": got, f"{key}_ok": got == asked})
        row["all_ok"] = all(row[f"{k}_ok"] for k in ATTRIBUTES)
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Accuracy per attribute (and all three together) for all prompts, held-out and seen combinations."""
    groups = {"all": rows, "held-out": [r for r in rows if r["held_out"]],
              "seen": [r for r in rows if not r["held_out"]]}
    table = {}
    for name, members in groups.items():
        if not members:
            continue
        table[name] = {"n": len(members), **{k: sum(r[f"{k}_ok"] for r in members) / len(members)
                                             for k in (*ATTRIBUTES, "all")}}
    return table


def format_table(table: dict[str, dict]) -> str:
    header = f"{'prompts':<10}{'n':>5}{'colour':>9}{'shape':>9}{'direction':>11}{'all three':>11}"
    lines = [header, "-" * len(header)]
    for name, s in table.items():
        lines.append(f"{name:<10}{s['n']:>5}{s['colour']:>9.1%}{s['shape']:>9.1%}{s['direction']:>11.1%}"
                     f"{s['all']:>11.1%}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def evaluate(pipe, cases: list[PromptCase], seed: int = 0, batch_size: int = 10, num_inference_steps=None,
             guidance_scale=None, progress=None) -> list[dict]:
    """Sample every prompt once (generator seeded by ``seed``) and score the videos."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for start in range(0, len(cases), batch_size):
        batch = cases[start:start + batch_size]
        out = pipe([c.prompt for c in batch], num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   generator=generator, output_type="uint8")
        rows += score_videos(batch, out.frames)
        if progress is not None:
            progress(len(rows))
    return rows


@click.group("eval")
def eval_group() -> None:
    """Evaluate generators."""


@eval_group.command("adherence")
@click.option("--model", default=None,
              help="pipeline folder (default: $KINEMA_PIPELINE, else the built-in default model)")
@click.option("-n", "--num-prompts", type=BoundedInt(1, 100_000), default=100, show_default=True)
@click.option("--seed", type=BoundedInt(0, MAX_SEED), default=0, show_default=True,
              help="picks the prompts and the sampling noise")
@click.option("--holdout-only", is_flag=True, help="only the colour:shape:direction combinations held out of training")
@click.option("--held-out", "held_out", multiple=True, metavar="COLOUR:SHAPE:DIRECTION",
              help="held-out combinations (repeatable; default: the default model's)")
@click.option("--phrasing", type=click.Choice(PHRASINGS), default="short", show_default=True,
              help='"a red circle moving right", or the synthetic captions with speed and size words')
@click.option("--steps", type=BoundedInt(1, MAX_STEPS), default=None, help="sampling steps (pipeline default)")
@click.option("--cfg", type=FiniteFloat(0, MAX_GUIDANCE), default=None, help="guidance scale (pipeline default)")
@click.option("--batch-size", type=BoundedInt(1, MAX_BATCH), default=10, show_default=True)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default="adherence.csv", show_default=True,
              help="per-prompt results")
@click.option("--device", default=None)
@click.option("--attention-cache", "attention_cache", is_flag=False, flag_value="default", default=None,
              metavar="[SPEC]", help='reuse attention outputs across steps: alone for the default setting, or '
              '"spatial=2,temporal=3,cross=5,start=0.1,end=0.9"')
def adherence_command(model, num_prompts, seed, holdout_only, held_out, phrasing, steps, cfg, batch_size, csv_path,
                      device, attention_cache):
    """Sample prompts of the synthetic vocabulary and score colour, shape and direction with the analyser."""
    from transformers.utils import logging as hf_logging

    from .attention_cache import AttentionCacheConfig
    from .cli import check_output_target, load_pipeline

    hf_logging.disable_progress_bar()
    cases = make_prompts(num_prompts, seed, held_out or HELD_OUT, holdout_only, phrasing)
    check_output_target(Path(csv_path), "--csv")
    cache_config = AttentionCacheConfig.parse(attention_cache) if attention_cache is not None else None
    pipe, model = load_pipeline(model, device)  # checks --device before loading
    if cache_config is not None:
        pipe.enable_attention_cache(cache_config)
    stderr = click.get_text_stream("stderr")
    with click.progressbar(length=len(cases), label=f"sampling {len(cases)} prompts", file=stderr) as bar:
        done = [0]

        def advance(n):
            bar.update(n - done[0])
            done[0] = n

        rows = evaluate(pipe, cases, seed, batch_size, steps, cfg, progress=advance)
    click.echo(f"model: {model}")
    if pipe.attention_cache is not None:
        click.echo(f"attention cache: {pipe.attention_cache.stats.summary()}")
    click.echo(format_table(summarise(rows)))
    click.echo(f"per-prompt results: {write_csv(rows, csv_path)}")
