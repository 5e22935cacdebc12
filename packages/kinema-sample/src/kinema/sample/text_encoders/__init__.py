"""Text encoders: prompts -> (per-token embeddings [B, 1, L, C], valid-token mask [B, L]).

Built-ins (registry names): ``t5``, ``clip``, ``minilm`` (offline, pretrained), ``tiny-t5``
(random init, tests), ``classes`` (class labels), ``unconditional``.
"""

from kinema.core import KinemaError

from .base import HFTextEncoder, KinemaTextEncoder, TextEmbedding, check_prompts
from .hf import T5_MAX_LENGTH, clip, minilm, t5, tiny_t5, tiny_t5_parts
from .labels import ClassLabelEncoder, UnconditionalEncoder
from .registered import RegisteredTextEncoder


def as_text_encoder(text_encoder, tokenizer, max_length: int):
    """A pipeline's (text_encoder, tokenizer) components as an object with ``encode``: our encoders encode
    themselves; a transformers model is wrapped with its tokenizer, padding to ``max_length`` tokens."""
    from transformers import PreTrainedModel

    if isinstance(text_encoder, (KinemaTextEncoder, HFTextEncoder)):
        return text_encoder
    if isinstance(text_encoder, PreTrainedModel):
        return HFTextEncoder(text_encoder, tokenizer, max_length, name=type(text_encoder).__name__)
    raise KinemaError(f"text_encoder is a {type(text_encoder).__name__}; a pipeline takes a transformers model "
                      "with its tokenizer or a kinema text encoder (kinema.sample.text_encoders)")


__all__ = [
    "ClassLabelEncoder",
    "HFTextEncoder",
    "KinemaTextEncoder",
    "RegisteredTextEncoder",
    "T5_MAX_LENGTH",
    "TextEmbedding",
    "UnconditionalEncoder",
    "as_text_encoder",
    "check_prompts",
    "clip",
    "minilm",
    "t5",
    "tiny_t5",
    "tiny_t5_parts",
]
