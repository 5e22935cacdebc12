"""kinema-data's plugin: built-in scorers, captioners and the ``kinema data`` command group.

Registered by name (``Lazy``): discovery imports neither pandas nor OpenCV.
"""

from __future__ import annotations

from kinema.core import Lazy, hookimpl


@hookimpl
def register_scorers(register):
    register("flow", Lazy("kinema.data.scorers.flow:FlowScorer"), column="flow", needs="nothing (OpenCV Farneback)")
    register("ocr", Lazy("kinema.data.scorers.ocr:OcrScorer"), column="ocr", needs="the tesseract program")
    register("blur", Lazy("kinema.data.scorers.blur:BlurScorer"), column="blur", needs="nothing (OpenCV)")
    register("cmotion", Lazy("kinema.data.scorers.cmotion:CameraMotionScorer"), column="cmotion",
             needs="nothing (OpenCV Farneback)")
    register("aesthetic", Lazy("kinema.data.scorers.clip:AestheticScorer"), column="aes",
             needs="CLIP weights + aesthetic head (--clip, --head)")
    register("match", Lazy("kinema.data.scorers.clip:MatchScorer"), column="match", needs="CLIP weights (--clip)")


@hookimpl
def register_captioners(register):
    register("template", Lazy("kinema.data.captioners:TemplateCaptioner"), needs="nothing")
    register("image-text-to-text", Lazy("kinema.data.captioners:TransformersCaptioner"),
             needs="a transformers VLM folder (--model)")


@hookimpl
def register_commands(cli):
    cli.add_lazy_command("data", "kinema.data.cli:data",
                         "Curate video data: tables, scene split, scores, captions, filters, shards, synthetic set.")
