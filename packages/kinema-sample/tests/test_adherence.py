"""`kinema eval adherence`: prompts of the synthetic vocabulary, scored with kinema.core.shapes' analyser."""

import csv

import pytest
from click.testing import CliRunner
from kinema.core import KinemaError
from kinema.core.shapes import SyntheticVideoSpec, render

from kinema.sample.adherence import (
    HELD_OUT,
    PromptCase,
    eval_group,
    format_table,
    make_prompts,
    score_videos,
    summarise,
)


def test_prompts_mix_held_out_and_seen_combinations_deterministically():
    cases = make_prompts(40, seed=3)
    assert cases == make_prompts(40, seed=3) and cases != make_prompts(40, seed=4)
    held = {tuple(c.split(":")) for c in HELD_OUT}
    assert sum(c.held_out for c in cases) == 10  # a quarter
    assert {(c.colour, c.shape, c.direction) for c in cases if c.held_out} == held  # each one at least once
    assert all(((c.colour, c.shape, c.direction) in held) == c.held_out for c in cases)
    assert all(c.prompt.endswith(f" {c.colour} {c.shape} moving {c.direction}") for c in cases)
    assert {c.prompt.split()[0] for c in cases if c.colour == "orange"} <= {"an"}


def test_holdout_only_and_caption_phrasing():
    cases = make_prompts(9, holdout_only=True, phrasing="caption")
    assert all(c.held_out for c in cases)
    for c in cases:  # the caption templates name colour and shape verbatim
        assert c.colour in c.prompt and c.shape in c.prompt
    with pytest.raises(KinemaError, match="unknown phrasing"):
        make_prompts(3, phrasing="poetic")
    with pytest.raises(KinemaError, match="colour:shape:direction"):
        make_prompts(3, held_out=["red:circle"])


def _clip(colour, shape, direction):
    return render(SyntheticVideoSpec(colour, shape, direction, "fast", "large", (0.5, 0.5), 17, 32, 32))


def test_scores_rendered_ground_truth_and_counts_mismatches():
    cases = [PromptCase("a", "red", "circle", "right", False), PromptCase("b", "blue", "square", "up", True),
             PromptCase("c", "green", "triangle", "left", False), PromptCase("d", "white", "circle", "down", False)]
    # the last video answers "white circle down" with a yellow circle moving up: colour and direction wrong
    videos = [_clip("red", "circle", "right"), _clip("blue", "square", "up"), _clip("green", "triangle", "left"),
              _clip("yellow", "circle", "up")]
    rows = score_videos(cases, videos)
    assert [r["all_ok"] for r in rows] == [True, True, True, False]
    assert (rows[3]["colour_found"], rows[3]["shape_ok"], rows[3]["direction_found"]) == ("yellow", True, "up")
    table = summarise(rows)
    assert table["all"] == {"n": 4, "colour": 0.75, "shape": 1.0, "direction": 0.75, "all": 0.75}
    assert table["held-out"]["n"] == 1 and table["seen"]["n"] == 3
    text = format_table(table)
    assert "held-out" in text and "75.0%" in text


def test_command_prints_the_table_and_writes_per_prompt_csv(tmp_path):
    out = tmp_path / "adherence.csv"
    result = CliRunner().invoke(eval_group, ["adherence", "-n", "4", "--seed", "1", "--batch-size", "4",
                                             "--csv", str(out)], env={"KINEMA_PIPELINE": None})
    assert result.exit_code == 0, result.output
    assert "colour" in result.output and "direction" in result.output and "held-out" in result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 4 and {"prompt", "colour_found", "shape_ok", "all_ok"} <= set(rows[0])


def test_command_reports_a_missing_model(tmp_path):
    result = CliRunner().invoke(eval_group, ["adherence", "-n", "2", "--model", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "no pipeline at" in str(result.exception)
