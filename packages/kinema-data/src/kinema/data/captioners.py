"""Captioners: stages that fill the ``text`` column (registered under the ``captioner`` kind).

- ``template``: a caption from the row's own columns, e.g. synthetic data or metadata-rich sets.
- ``image-text-to-text``: any transformers vision-language model (LLaVA, ...) from a folder the
  user supplies, prompted with upstream's "video" prompt on the middle frame(s).
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from kinema.core import KinemaError

from .frames import frame_count, frames_at, relative_indices
from .stage import Stage

# Upstream's `video` caption prompt (tools/caption/utils.py).
VIDEO_PROMPT = (
    "Describe this video and its style in a very detailed manner. Pay attention to all objects in the video. "
    "The description should be useful for AI to re-generate the video. The description should be no more than "
    "six sentences."
)


class TemplateCaptioner(Stage):
    """``text = template.format(**row)``, e.g. "A {cmotion} shot of {num_frames} frames."."""

    name = "caption"
    columns = ("text",)

    def __init__(self, template: str = "A video of {num_frames} frames at {fps:.0f} fps, {width}x{height}."):
        self.template = template
        self.fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]

    def process(self, row: dict) -> dict:
        missing = [f for f in self.fields if row.get(f) is None]
        if missing:
            raise KinemaError(f"caption template needs column(s) {', '.join(missing)} (empty for this row)")
        values = {k: (int(v) if isinstance(v, float) and v.is_integer() and k in ("num_frames", "height", "width")
                      else v) for k, v in row.items()}
        return {"text": self.template.format(**values)}


class TransformersCaptioner(Stage):
    """Caption with a transformers image-text-to-text model loaded from a local folder."""

    name = "caption"
    columns = ("text",)

    def __init__(self, model: str | None = None, prompt: str = VIDEO_PROMPT, points=(0.5,),
                 max_new_tokens: int = 300):
        self.model_path, self.prompt, self.points, self.max_new_tokens = model, prompt, tuple(points), max_new_tokens

    def check(self) -> None:
        path = self.model_path or os.environ.get("KINEMA_CAPTION_MODEL")
        if not path:
            raise KinemaError("the image-text-to-text captioner needs a model folder: pass --model PATH "
                           "(a transformers vision-language model, e.g. llava-v1.6) or set KINEMA_CAPTION_MODEL; "
                           "kinema does not download weights. Without weights, use the 'template' captioner.")
        if not Path(path).is_dir():
            raise KinemaError(f"caption model folder {path!r} does not exist")
        self.model_path = path

    def setup(self) -> None:
        self.check()
        from transformers import pipeline

        try:
            self.pipe = pipeline("image-text-to-text", model=self.model_path)
        except Exception as exc:
            raise KinemaError(f"cannot load a captioner from {self.model_path!r}: {type(exc).__name__}: "
                f"{exc}") from None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "pipe"}

    def process(self, row: dict) -> dict:
        from PIL import Image

        frames = frames_at(row["path"], relative_indices(frame_count(row), self.points))
        content = [{"type": "image", "image": Image.fromarray(f)} for f in frames]
        content.append({"type": "text", "text": self.prompt})
        out = self.pipe(text=[{"role": "user", "content": content}], max_new_tokens=self.max_new_tokens,
                        return_full_text=False, generate_kwargs={"do_sample": False})
        text = out[0]["generated_text"]
        if isinstance(text, list):  # chat format: the assistant's last message
            text = text[-1]["content"]
        return {"text": str(text).strip()}
