"""Text encoders: prompts -> (per-token embeddings [B, 1, L, C], valid-token mask [B, L]).

Built-ins (registry names): ``t5``, ``clip``, ``minilm`` (offline, pretrained), ``tiny-t5``
(random init, tests), ``classes`` (class labels), ``unconditional``.
"""

from .base import HFTextEncoder, TextEmbedding, check_prompts
from .hf import T5_MAX_LENGTH, clip, minilm, t5, tiny_t5, tiny_t5_parts
from .labels import ClassLabelEncoder, UnconditionalEncoder



def as_text_encoder(text_encoder, tokenizer=None, max_length: int | None = None):
    """A pipeline's (text_encoder, tokenizer) components as an object with ``encode``."""
    from transformers import PreTrainedModel

    if not isinstance(text_encoder, PreTrainedModel) and hasattr(text_encoder, "encode"):
        return text_encoder
    if max_length is None:
        raise ValueError("max_length is needed to wrap a transformers text encoder")
    return HFTextEncoder(text_encoder, tokenizer, max_length, name=type(text_encoder).__name__)


__all__ = [
    "ClassLabelEncoder",
    "HFTextEncoder",
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
