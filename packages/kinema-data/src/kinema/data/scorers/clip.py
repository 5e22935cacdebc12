"""CLIP-based scores: aesthetic (``aes``) and caption-video match (``match``).

Both need weights the user supplies (nothing is downloaded):
- ``clip``: a folder holding a transformers ``CLIPModel`` + processor (upstream: OpenAI ViT-L/14),
  or the environment variable KINEMA_CLIP_PATH;
- aesthetic only, ``head``: the improved-aesthetic-predictor MLP (upstream's
  ``sac+logos+ava1-l14-linearMSE.pth``; .pth or .safetensors), or KINEMA_AESTHETIC_HEAD.

Aesthetic: L2-normalised CLIP image features of the frames at 0.1, 0.5, 0.9 of the video through
the MLP 768-1024-128-64-16-1, averaged. Match: 100 * cosine(image features of the middle frame,
text features of the caption).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from kinema.core import KinemaError

from ..frames import frame_count, frames_at, relative_indices
from ..stage import Stage


def _require(path: str | None, env: str, what: str, flag: str) -> Path:
    path = path or os.environ.get(env)
    if not path:
        raise KinemaError(f"the {what} needs weights: pass {flag} PATH or set {env}; kinema does not download them")
    if not Path(path).exists():
        raise KinemaError(f"{what} weights not found at {path!r} (from {flag} / {env})")
    return Path(path)


def load_clip(folder: Path):
    from transformers import CLIPModel, CLIPProcessor

    try:
        model = CLIPModel.from_pretrained(folder).eval()
        processor = CLIPProcessor.from_pretrained(folder)
    except Exception as exc:
        raise KinemaError(f"cannot load a CLIP model from {str(folder)!r}: {type(exc).__name__}: {exc}") from None
    return model, processor


class AestheticHead(nn.Module):
    """The improved-aesthetic-predictor MLP; parameter names match its checkpoint (``layers.N``)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024), nn.Dropout(0.2),
            nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)

    @classmethod
    def load(cls, path: Path) -> AestheticHead:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        head = cls(state["layers.0.weight"].shape[1])
        head.load_state_dict(state)
        return head.eval()


def _image_features(model, processor, frames) -> torch.Tensor:
    inputs = processor(images=list(frames), return_tensors="pt")
    features = model.get_image_features(pixel_values=inputs["pixel_values"])
    features = getattr(features, "pooler_output", features)
    return features / features.norm(dim=-1, keepdim=True)


class AestheticScorer(Stage):
    name = "aes"
    columns = ("aes",)

    def __init__(self, clip: str | None = None, head: str | None = None, points=(0.1, 0.5, 0.9)):
        self.clip_path, self.head_path, self.points = clip, head, tuple(points)

    def check(self) -> None:
        self.clip_path = str(_require(self.clip_path, "KINEMA_CLIP_PATH", "aesthetic scorer", "--clip"))
        self.head_path = str(_require(self.head_path, "KINEMA_AESTHETIC_HEAD", "aesthetic scorer", "--head"))

    def setup(self) -> None:
        self.check()
        self.model, self.processor = load_clip(Path(self.clip_path))
        self.head = AestheticHead.load(Path(self.head_path))

    def __getstate__(self):  # models are loaded in each worker, never pickled
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "processor", "head")}

    @torch.no_grad()
    def process(self, row: dict) -> dict:
        frames = frames_at(row["path"], relative_indices(frame_count(row), self.points))
        return {"aes": float(self.head(_image_features(self.model, self.processor, frames)).mean())}


class MatchScorer(Stage):
    name = "match"
    columns = ("match",)

    def __init__(self, clip: str | None = None):
        self.clip_path = clip

    def check(self) -> None:
        self.clip_path = str(_require(self.clip_path, "KINEMA_CLIP_PATH", "match scorer", "--clip"))

    def setup(self) -> None:
        self.check()
        self.model, self.processor = load_clip(Path(self.clip_path))

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "processor")}

    @torch.no_grad()
    def process(self, row: dict) -> dict:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise KinemaError("the match scorer needs a caption in the 'text' column")
        frame = frames_at(row["path"], relative_indices(frame_count(row), (0.5,)))
        image = _image_features(self.model, self.processor, frame)
        tokens = self.processor(text=[text], return_tensors="pt", padding=True, truncation=True)
        features = self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        features = getattr(features, "pooler_output", features)
        features = features / features.norm(dim=-1, keepdim=True)
        return {"match": float(100.0 * (image * features).sum())}
