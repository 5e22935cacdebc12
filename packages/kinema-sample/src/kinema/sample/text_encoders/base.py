"""The text-encoder interface: prompts in, per-token embeddings and a valid-token mask out.

``encode(prompts) -> TextEmbedding(y [B, 1, L, C], mask [B, L])`` with L = ``max_length`` (prompts are
padded to it, longer ones truncated with a warning) and C = ``hidden_size``, the model's
``caption_channels``. The layout is the one STDiT/STDiT2 consume (``y``, ``mask``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from kinema.core import KinemaError


@dataclass
class TextEmbedding:
    y: torch.Tensor  # [B, 1, L, C]
    mask: torch.Tensor  # [B, L], 1 = valid token

    def __len__(self) -> int:
        return self.y.shape[0]


def check_prompts(prompts: str | list[str], allow_empty: bool = False) -> list[str]:
    """A list of prompts; an empty one is an error (unless it is a negative prompt)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise KinemaError("no prompt given: pass at least one text prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise KinemaError(f"prompt {i} is a {type(p).__name__}, not text")
        if not allow_empty and not p.strip():
            raise KinemaError(f"prompt {i} is empty: describe the video to generate, e.g. \"a red car on a beach\"")
    return list(prompts)


class HFTextEncoder:
    """A transformers encoder (T5EncoderModel, BertModel, CLIPTextModel) and its tokenizer.

    Returns the last hidden state of every token position, padded to ``max_length``.
    """

    def __init__(self, model, tokenizer, max_length: int, name: str = "text encoder"):
        if tokenizer is None:
            raise KinemaError(f"{name} needs a tokenizer; the pipeline folder has none")
        self.model, self.tokenizer, self.max_length, self.name = model, tokenizer, int(max_length), name

    @property
    def hidden_size(self) -> int:
        config = self.model.config
        return getattr(config, "d_model", None) or config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device):
        self.model.to(device)
        return self

    def _warn_truncated(self, prompts: list[str]) -> None:
        lengths = [len(ids) for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]
        long = [(i, n) for i, n in enumerate(lengths) if n > self.max_length]
        if long:
            detail = ", ".join(f"prompt {i}: {n} tokens" for i, n in long)
            warnings.warn(f"{self.name} reads at most {self.max_length} tokens; truncated {detail}",
                          UserWarning, stacklevel=3)

    @torch.no_grad()
    def encode(self, prompts: str | list[str], allow_empty: bool = False) -> TextEmbedding:
        prompts = check_prompts(prompts, allow_empty)
        self._warn_truncated(prompts)
        tokens = self.tokenizer(prompts, max_length=self.max_length, padding="max_length", truncation=True,
                                add_special_tokens=True, return_tensors="pt")
        ids, mask = tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return TextEmbedding(y=hidden[:, None].float(), mask=mask)


class KinemaTextEncoder(ModelMixin, ConfigMixin):
    """A pipeline text encoder that encodes prompts itself (class labels, unconditional, registered ones).

    A transformers model (T5, CLIP, BERT) with its tokenizer is the other kind of pipeline text encoder; the
    pipeline wraps it in :class:`HFTextEncoder`.
    """

    max_length: int
    hidden_size: int

    def encode(self, prompts, allow_empty: bool = False) -> TextEmbedding:
        raise NotImplementedError
