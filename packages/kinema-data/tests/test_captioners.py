from __future__ import annotations

import pandas as pd
import pytest

from kinema.core import KinemaError, get_registry
from kinema.data.captioners import TemplateCaptioner, TransformersCaptioner
from kinema.data.table import read_table


def test_captioners_are_registered():
    assert {"template", "image-text-to-text"} <= set(get_registry("captioner").names())


def test_template_captioner_formats_row_columns():
    captioner = TemplateCaptioner("A {cmotion} shot, {num_frames} frames.")
    assert captioner.process({"cmotion": "static", "num_frames": 16.0}) == {"text": "A static shot, 16 frames."}
    with pytest.raises(KinemaError, match="needs column"):
        captioner.process({"cmotion": "static"})


def test_caption_command_with_template(tmp_path, kinema_cli):
    pd.DataFrame({"path": ["/a.mp4", "/b.mp4"], "colour": ["red", "blue"]}).to_csv(tmp_path / "in.csv", index=False)
    result = kinema_cli("data", "caption", "template", tmp_path / "in.csv", "-o", tmp_path / "out.csv",
                     "--template", "a {colour} thing", "--workers", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_table(tmp_path / "out.csv")["text"].tolist() == ["a red thing", "a blue thing"]


def test_model_captioner_without_weights_points_to_the_template_one(monkeypatch):
    monkeypatch.delenv("KINEMA_CAPTION_MODEL", raising=False)
    with pytest.raises(KinemaError, match="needs a model folder.*template"):
        TransformersCaptioner().check()
    with pytest.raises(KinemaError, match="does not exist"):
        TransformersCaptioner(model="/no/such/model").check()
