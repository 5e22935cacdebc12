"""Class-label and unconditional encoders: the same interface, for class-conditional and
unconditional video models (Open-Sora-Plan's UCF-101 / SkyTimelapse setups).

Both return one token per sample ([B, 1, 1, C]), so a cross-attention DiT trains on them unchanged.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  diffusers' loader finds the base class here
from kinema.core import KinemaError
from torch import nn

from .base import KinemaTextEncoder, TextEmbedding, check_prompts


class ClassLabelEncoder(KinemaTextEncoder):
    """A learned embedding per class; prompts are class names (or their indices as text).

    Row ``num_classes`` is the learned null class, used for guidance.
    """

    @register_to_config
    def __init__(self, num_classes: int, hidden_size: int, class_names: list[str] | None = None):
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.embedding = nn.Embedding(num_classes + 1, hidden_size)
        nn.init.normal_(self.embedding.weight, std=0.02)

    max_length = 1

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def label(self, prompt: str) -> int:
        names = self.config.class_names or []
        if prompt in names:
            return names.index(prompt)
        if prompt.strip().isdigit() and int(prompt) < self.config.num_classes:
            return int(prompt)
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else \
            f"0..{self.config.num_classes - 1}"
        raise KinemaError(f"unknown class {prompt!r}; this model knows: {shown}")

    @torch.no_grad()
    def encode(self, prompts, allow_empty: bool = False) -> TextEmbedding:
        prompts = check_prompts(prompts, allow_empty)
        labels = [self.config.num_classes if not p.strip() else self.label(p) for p in prompts]
        ids = torch.tensor(labels, device=self.embedding.weight.device)
        y = self.embedding(ids)[:, None, None].float()
        return TextEmbedding(y=y, mask=torch.ones(len(prompts), 1, dtype=torch.long, device=y.device))


class UnconditionalEncoder(KinemaTextEncoder):
    """No conditioning: every prompt (even an empty one) maps to the same all-zero token."""

    @register_to_config
    def __init__(self, hidden_size: int):
        super().__init__()
        self.register_buffer("token", torch.zeros(hidden_size))  # persistent: the folder needs a weights file

    max_length = 1

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @torch.no_grad()
    def encode(self, prompts, allow_empty: bool = True) -> TextEmbedding:
        n = 1 if isinstance(prompts, str) else max(len(prompts), 1)
        y = self.token.expand(n, 1, 1, -1).float().clone()
        return TextEmbedding(y=y, mask=torch.ones(n, 1, dtype=torch.long, device=y.device))
