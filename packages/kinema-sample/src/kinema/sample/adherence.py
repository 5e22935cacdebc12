"""Prompt adherence: sample N prompts of the synthetic vocabulary, read the videos back with the shapes
analyser of ``kinema.core.shapes`` (colour, shape, direction from pixels) and count how often they match the
prompt.

    kinema eval adherence                              # the built-in default model, 100 prompts
    kinema eval adherence --model DIR -n 40 --seed 1 --holdout-only --csv adherence.csv
    kinema eval adherence --phrasing varied            # prompts worded like the training captions, or not

Prompts cover colour x shape x direction; the combinations in ``HELD_OUT`` were never drawn when
the default model was trained (``kinema data synth --exclude``), so their rows measure how the model
composes words it has only seen apart. With ``--phrasing varied`` a quarter of the prompts are worded from
phrasings the synthetic set never uses (``kinema.core.shapes.PHRASINGS["held-out"]``), so the "held-out
phrasing" row measures how the model copes with unfamiliar wording. A second table breaks accuracy down by
the colour, shape and direction asked for, so one failing colour stands out.
"""

from __future__ import annotations

import csv
import os
import random
import sys
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
PHRASINGS = ("short", "caption", "varied")


@dataclass(frozen=True)
class PromptCase:
    prompt: str
    colour: str
    shape: str
    direction: str
    held_out: bool  # the colour:shape:direction combination was held out of training
    held_out_phrasing: bool = False  # worded from phrasings never used for training


def short_prompt(colour: str, shape: str, direction: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} moving {direction}"


def make_prompts(n: int, seed: int = 0, held_out=HELD_OUT, holdout_only: bool = False,
                 phrasing: str = "short") -> list[PromptCase]:
    """``n`` prompts: a quarter (all when ``holdout_only``) cycle through the held-out combinations, the
    rest draw seen ones. ``phrasing``: ``short`` ("a red circle moving right"), ``caption`` (the
    synthetic set's own caption templates, with speed and size words) or ``varied`` (a quarter of the prompts,
    whichever their combinations, worded from the held-out phrasings, the rest from the training ones)."""
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
    # varied: its own stream, so which prompts get unseen wording does not depend on the combinations
    words = random.Random(f"adherence-phrasing-{seed}")
    unseen = set(words.sample(range(n), n // 4)) if phrasing == "varied" else set()
    cases = []
    for i, (colour, shape, direction) in enumerate(combos):
        if phrasing == "short":
            text = short_prompt(colour, shape, direction)
        else:
            stream = rng if phrasing == "caption" else words
            spec = random_spec(stream)
            spec = type(spec)(colour, shape, direction, spec.speed, spec.size, spec.start)
            text = caption(spec, stream, phrasings="held-out" if i in unseen else "train")
        cases.append(PromptCase(text, colour, shape, direction, (colour, shape, direction) in set(held), i in unseen))
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
        row["held_out_phrasing"] = case.held_out_phrasing  # last: the columns before it keep their places
        rows.append(row)
    return rows


def _accuracy(members: list[dict]) -> dict:
    """{"n", colour, shape, direction, all}: the share of ``members`` right on each (None when there are none)."""
    n = len(members)
    return {"n": n, **{k: sum(r[f"{k}_ok"] for r in members) / n if n else None for k in (*ATTRIBUTES, "all")}}


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Accuracy per attribute (and all three together) for all prompts, held-out and seen combinations, and
    prompts worded from held-out phrasings (when there are any)."""
    groups = {"all": rows, "held-out": [r for r in rows if r["held_out"]],
              "seen": [r for r in rows if not r["held_out"]],
              "held-out phrasing": [r for r in rows if r.get("held_out_phrasing")]}
    return {name: _accuracy(members) for name, members in groups.items() if members}


def summarise_by_value(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """{attribute: {value: accuracy}} over the prompts asking for that colour, shape or direction: every value
    of the vocabulary, those never asked for with n 0."""
    from kinema.core.shapes import COLOURS, DIRECTIONS, SHAPES

    vocabulary = {"colour": tuple(COLOURS), "shape": SHAPES, "direction": DIRECTIONS}
    return {key: {value: _accuracy([r for r in rows if r[key] == value]) for value in vocabulary[key]}
            for key in ATTRIBUTES}


def _format_rows(first_column: str, table: dict[str, dict]) -> list[str]:
    width = max([10, *(len(name) + 2 for name in table)])  # "held-out phrasing" widens the first column
    header = f"{first_column:<{width}}{'n':>5}{'colour':>9}{'shape':>9}{'direction':>11}{'all three':>11}"
    lines = [header, "-" * len(header)]
    for name, s in table.items():
        cells = [f"{s[k]:.1%}" if s[k] is not None else "-" for k in (*ATTRIBUTES, "all")]
        lines.append(f"{name:<{width}}{s['n']:>5}{cells[0]:>9}{cells[1]:>9}{cells[2]:>11}{cells[3]:>11}")
    return lines


def format_table(table: dict[str, dict]) -> str:
    return "\n".join(_format_rows("prompts", table))


def format_value_table(by_value: dict[str, dict[str, dict]]) -> str:
    """One block per attribute, one row per value asked for: which colour, shape or direction fails."""
    return "\n\n".join("\n".join(_format_rows(f"asked {key}", table)) for key, table in by_value.items())


def first_free(path: Path) -> Path:
    """``path``, or the first of path-2, path-3, ... (before the suffix) that does not exist."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


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
              help='"a red circle moving right"; the synthetic captions with speed and size words; or varied '
              'wordings, a quarter of them never used for training')
@click.option("--steps", type=BoundedInt(1, MAX_STEPS), default=None, help="sampling steps (pipeline default)")
@click.option("--cfg", type=FiniteFloat(0, MAX_GUIDANCE), default=None, help="guidance scale (pipeline default)")
@click.option("--batch-size", type=BoundedInt(1, MAX_BATCH), default=10, show_default=True)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="per-prompt results [default: adherence.csv, or adherence-2.csv, ... where that is taken]")
@click.option("--overwrite", is_flag=True, help="replace a --csv file that is already there")
@click.option("--device", default=None)
@click.option("--attention-cache", "attention_cache", is_flag=False, flag_value="default", default=None,
              metavar="[SPEC]", help='reuse attention outputs across steps: alone for the default setting, or '
              '"spatial=2,temporal=3,cross=5,start=0.1,end=0.9"')
def adherence_command(model, num_prompts, seed, holdout_only, held_out, phrasing, steps, cfg, batch_size, csv_path,
                      overwrite, device, attention_cache):
    """Sample prompts of the synthetic vocabulary and score colour, shape and direction with the analyser."""
    from transformers.utils import logging as hf_logging

    from .attention_cache import AttentionCacheConfig
    from .cli import check_output_target, load_pipeline

    hf_logging.disable_progress_bar()
    cases = make_prompts(num_prompts, seed, held_out or HELD_OUT, holdout_only, phrasing)
    # an earlier run's results are not replaced by accident: a named file only with --overwrite, the default
    # name is numbered on
    if csv_path is None:
        csv_path = first_free(Path("adherence.csv"))
    elif Path(csv_path).exists() and not overwrite:
        raise KinemaError(f"--csv {csv_path!r} already exists; choose another --csv, or pass --overwrite to replace it")
    check_output_target(Path(csv_path), "--csv")
    cache_config = AttentionCacheConfig.parse(attention_cache) if attention_cache is not None else None
    pipe, model = load_pipeline(model, device)  # checks --device before loading
    if cache_config is not None:
        pipe.enable_attention_cache(cache_config)
    # the bar on stderr, so that stdout holds only the tables (click.get_text_stream goes in Click 9)
    with click.progressbar(length=len(cases), label=f"sampling {len(cases)} prompts", file=sys.stderr) as bar:
        done = [0]

        def advance(n):
            bar.update(n - done[0])
            done[0] = n

        rows = evaluate(pipe, cases, seed, batch_size, steps, cfg, progress=advance)
    click.echo(f"model: {model}")
    if pipe.attention_cache is not None:
        click.echo(f"attention cache: {pipe.attention_cache.stats.summary()}")
    click.echo(format_table(summarise(rows)))
    click.echo()
    click.echo(format_value_table(summarise_by_value(rows)))
    click.echo(f"per-prompt results: {write_csv(rows, csv_path)}")
