from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from kinema.core import KinemaError
from kinema.data.scorers.clip import AestheticHead, AestheticScorer, MatchScorer


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte-level alphabet (the 256 symbols CLIP's BPE vocabulary starts from)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised CLIP (a few thousand parameters) saved as a local folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip")
    alphabet = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>",
                                                                                    "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=len(vocab) - 2,
                         eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1),
        vision_config=dict(image_size=32, patch_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=8, logit_scale_init_value=math.log(100.0),
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def clip_video(make_clip):
    rng = np.random.default_rng(0)
    return make_clip("clip.mp4", rng.integers(0, 255, (10, 48, 64, 3), dtype=np.uint8))


def test_missing_weights_say_what_to_pass(monkeypatch):
    monkeypatch.delenv("KINEMA_CLIP_PATH", raising=False)
    monkeypatch.delenv("KINEMA_AESTHETIC_HEAD", raising=False)
    with pytest.raises(KinemaError, match="needs weights: pass --clip PATH or set KINEMA_CLIP_PATH"):
        MatchScorer().check()
    with pytest.raises(KinemaError, match="not found at '/nowhere'"):
        AestheticScorer(clip="/nowhere").check()


def test_missing_weights_from_the_cli(kinema_cli, tmp_path, clip_video, monkeypatch):
    monkeypatch.delenv("KINEMA_CLIP_PATH", raising=False)
    (tmp_path / "in.csv").write_text(f"path,text\n{clip_video},a cat\n")
    result = kinema_cli("data", "score", "match", tmp_path / "in.csv")
    assert result.exit_code == 1 and "pass --clip PATH" in result.output and "Traceback" not in result.output


def test_match_is_100_times_clip_cosine(tiny_clip, clip_video):
    from transformers import CLIPModel, CLIPProcessor

    from kinema.core.video import read_video

    scorer = MatchScorer(clip=str(tiny_clip))
    scorer.setup()
    score = scorer.process({"path": clip_video, "text": "a red circle moving left"})["match"]
    # reference: the model's own forward, logits = exp(logit_scale) * cosine with logit_scale = ln 100
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    middle = read_video(clip_video).frames[5].numpy()
    inputs = processor(text=["a red circle moving left"], images=[middle], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.item()
    assert score == pytest.approx(expected, rel=1e-4)


def test_aesthetic_is_the_head_on_normalised_clip_features(tiny_clip, clip_video, tmp_path):
    from safetensors.torch import save_file
    from transformers import CLIPModel, CLIPProcessor

    from kinema.core.video import read_video

    torch.manual_seed(1)
    head = AestheticHead(dim=8).eval()
    save_file(head.state_dict(), tmp_path / "head.safetensors")
    torch.save(head.state_dict(), tmp_path / "head.pth")
    assert sorted(head.state_dict())[:2] == ["layers.0.bias", "layers.0.weight"]
    scores = []
    for name in ("head.safetensors", "head.pth"):
        scorer = AestheticScorer(clip=str(tiny_clip), head=str(tmp_path / name))
        scorer.setup()
        scores.append(scorer.process({"path": clip_video, "num_frames": 10})["aes"])
    model, processor = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPProcessor.from_pretrained(tiny_clip)
    frames = read_video(clip_video).frames.numpy()[[1, 5, 9]]  # 0.1, 0.5, 0.9 of 10 frames
    with torch.no_grad():
        embeds = model(**processor(text=["x"], images=list(frames), return_tensors="pt")).image_embeds
        expected = head(embeds / embeds.norm(dim=-1, keepdim=True)).mean().item()
    assert scores[0] == pytest.approx(expected, rel=1e-4) and scores[1] == pytest.approx(expected, rel=1e-4)
