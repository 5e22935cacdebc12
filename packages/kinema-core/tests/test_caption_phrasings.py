"""Synthetic captions: varied wording from a training pool and a held-out pool that share no template or synonym,
every caption naming its colour, shape and direction exactly once."""

from __future__ import annotations

import random
import re

import pytest

from kinema.core import KinemaError
from kinema.core.shapes import (
    COLOURS,
    DIRECTIONS,
    PHRASINGS,
    SHAPES,
    SIZES,
    SPEEDS,
    SyntheticVideoSpec,
    caption,
    random_spec,
)

POOLS = tuple(PHRASINGS)


def _count(phrase: str, text: str) -> int:
    return len(re.findall(rf"\b{re.escape(phrase)}\b", text))


def _named(words_by_value: dict[str, tuple[str, ...]], text: str) -> list[str]:
    """The values whose words occur in ``text``, once per occurrence; longer phrases are taken out first so
    "up" inside "toward the top edge" or "left" inside "to the left" is not counted twice."""
    found = []
    for value, phrase in sorted(((v, p) for v, ps in words_by_value.items() for p in ps), key=lambda x: -len(x[1])):
        found += [value] * _count(phrase, text)
        text = re.sub(rf"\b{re.escape(phrase)}\b", "#", text)
    return found


def _all_words(field: str) -> dict[str, tuple[str, ...]]:
    """Every phrase of ``field`` (directions, speeds or sizes) in both pools, by the value it names."""
    merged: dict[str, tuple[str, ...]] = {}
    for pool in PHRASINGS.values():
        for value, words in getattr(pool, field).items():
            merged[value] = merged.get(value, ()) + words
    return merged


@pytest.mark.parametrize("pool", POOLS)
def test_every_caption_names_colour_shape_and_direction_exactly_once(pool):
    directions, speeds, sizes = _all_words("directions"), _all_words("speeds"), _all_words("sizes")
    for seed in range(3):
        rng = random.Random(f"{pool}-{seed}")
        for i, (colour, shape, direction) in enumerate(
                (c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS):
            speed, size = SPEEDS[(i + seed) % 2], SIZES[(i // 2 + seed) % 2]
            spec = SyntheticVideoSpec(colour, shape, direction, speed, size, (0.5, 0.5))
            text = caption(spec, rng, phrasings=pool)
            lower = text.lower()
            assert [c for c in COLOURS if _count(c, lower)] == [colour] and _count(colour, lower) == 1, text
            assert [s for s in SHAPES if _count(s, lower)] == [shape] and _count(shape, lower) == 1, text
            assert _named(directions, lower) == [direction], text
            assert _named(speeds, lower) in ([], [speed]), text  # a few templates leave speed or size out
            assert _named(sizes, lower) in ([], [size]), text
            assert "  " not in text and not re.search(r" [,.:]|^\W|\ba [aeiou]", lower), text


def test_templates_hold_each_attribute_field_once():
    for pool in PHRASINGS.values():
        for template in pool.templates:
            fields = re.findall(r"{(\w+)}", template)
            assert all(fields.count(f) == 1 for f in ("colour", "shape", "direction")), template
            assert all(fields.count(f) <= 1 for f in set(fields)), template


def test_training_and_held_out_pools_share_no_template_or_synonym():
    train, held = PHRASINGS["train"], PHRASINGS["held-out"]
    assert not set(train.templates) & set(held.templates)
    assert not set(train.verbs) & set(held.verbs) and not set(train.participles) & set(held.participles)
    assert not set(train.backgrounds) & set(held.backgrounds)
    for field in ("directions", "speeds", "sizes"):
        train_words = {w for words in getattr(train, field).values() for w in words}
        held_words = {w for words in getattr(held, field).values() for w in words}
        assert not train_words & held_words, field


def test_no_held_out_caption_is_ever_a_training_caption():
    def draws(pool: str) -> set[str]:
        rng = random.Random(f"draws-{pool}")
        return {caption(random_spec(rng), rng, phrasings=pool).lower().rstrip(".") for _ in range(3000)}

    train, held = draws("train"), draws("held-out")
    assert len(train) > 1000 and len(held) > 1000  # many distinct wordings, not a handful
    assert not train & held


def test_training_captions_vary_word_order_articles_case_punctuation_and_background():
    rng = random.Random(0)
    texts = [caption(random_spec(rng), rng) for _ in range(400)]
    first_words = {t.split()[0].lower().rstrip(",") for t in texts}
    assert first_words & set(COLOURS)  # colour first
    assert first_words & {"a", "an", "the"}  # an article first
    assert first_words & set(PHRASINGS["train"].participles)  # motion verb first
    assert first_words & {"up", "down", "left", "right", "upward", "leftward", "to", "towards"}  # direction first
    assert any(t.endswith(".") for t in texts) and any(not t.endswith(".") for t in texts)
    assert any(t[0].isupper() for t in texts) and any(t[0].islower() for t in texts)
    assert any(b in t for t in texts for b in PHRASINGS["train"].backgrounds)
    assert any(not any(b in t for b in PHRASINGS["train"].backgrounds) for t in texts)


def test_captions_are_deterministic_given_the_rng_and_unknown_pools_are_refused():
    spec = SyntheticVideoSpec("orange", "triangle", "up", "slow", "small", (0.5, 0.5))
    for pool in POOLS:
        assert caption(spec, random.Random(7), pool) == caption(spec, random.Random(7), pool)
    assert len({caption(spec, random.Random(s)) for s in range(30)}) > 10
    with pytest.raises(KinemaError, match="unknown phrasings 'poetic'; choose train, held-out"):
        caption(spec, random.Random(0), phrasings="poetic")
