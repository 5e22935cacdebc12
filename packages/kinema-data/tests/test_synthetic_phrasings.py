"""`kinema data synth` (and the training source built on make_dataset) words captions from the training
phrasings only: nothing of kinema.core.shapes' held-out pool reaches the set."""

from __future__ import annotations

import re

from kinema.core.shapes import PHRASINGS
from kinema.data.synthetic import make_dataset


def _held_out_phrases() -> set[str]:
    held = PHRASINGS["held-out"]
    phrases = {*held.verbs, *held.participles, *held.backgrounds}
    for field in (held.directions, held.speeds, held.sizes):
        phrases |= {w for words in field.values() for w in words}
    return phrases


def test_synthetic_captions_use_training_phrasings_only():
    table, _ = make_dataset(300, seed=2, num_frames=2, height=16, width=16)
    texts = [t.lower() for t in table["text"]]
    for phrase in _held_out_phrases():
        assert not any(re.search(rf"\b{re.escape(phrase)}\b", t) for t in texts), phrase
    # the training pool's own variety does reach the set
    assert any(re.search(rf"\b{verb}\b", t) for t in texts for verb in ("heads", "goes"))
    assert any(b in t for t in texts for b in PHRASINGS["train"].backgrounds)
