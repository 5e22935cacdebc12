"""kinema-data's plugin: built-in scorers, captioners and the ``kinema data`` command group."""

from __future__ import annotations

from kinema.core import hookimpl


@hookimpl
def register_scorers(register):
    from .scorers.blur import BlurScorer
    from .scorers.clip import AestheticScorer, MatchScorer
    from .scorers.cmotion import CameraMotionScorer
    from .scorers.flow import FlowScorer
    from .scorers.ocr import OcrScorer

    register("flow", FlowScorer, column="flow", needs="nothing (OpenCV Farneback)")
    register("ocr", OcrScorer, column="ocr", needs="the tesseract program")
    register("blur", BlurScorer, column="blur", needs="nothing (OpenCV)")
    register("cmotion", CameraMotionScorer, column="cmotion", needs="nothing (OpenCV Farneback)")
    register("aesthetic", AestheticScorer, column="aes", needs="CLIP weights + aesthetic head (--clip, --head)")
    register("match", MatchScorer, column="match", needs="CLIP weights (--clip)")


@hookimpl
def register_captioners(register):
    from .captioners import TemplateCaptioner, TransformersCaptioner

    register("template", TemplateCaptioner, needs="nothing")
    register("image-text-to-text", TransformersCaptioner, needs="a transformers VLM folder (--model)")


@hookimpl
def register_commands(cli):
    from .cli import data

    cli.add_command(data)
