import pytest
import torch
from kinema.core import KinemaError, lookup

from kinema.sample.text_encoders import ClassLabelEncoder, UnconditionalEncoder, as_text_encoder, t5, tiny_t5_parts


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    """A tiny T5 encoder and byte-level tokenizer written to disk, loaded back like a real checkpoint."""
    path = tmp_path_factory.mktemp("t5")
    model, tokenizer = tiny_t5_parts(hidden_size=32)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_t5_from_local_folder_returns_embeddings_and_mask(t5_dir):
    enc = t5(str(t5_dir), version="1.0")
    assert enc.max_length == 120 and enc.hidden_size == 32
    out = enc.encode(["a cat", "a red car driving on a beach"])
    assert out.y.shape == (2, 1, 120, 32) and out.mask.shape == (2, 120)
    # byte-level: one token per byte plus </s>
    assert out.mask.sum(1).tolist() == [len("a cat") + 1, len("a red car driving on a beach") + 1]
    # the embedding of a prompt does not depend on what it is batched with
    alone = enc.encode("a cat")
    n = len("a cat") + 1
    torch.testing.assert_close(alone.y[0, 0, :n], out.y[0, 0, :n], atol=1e-5, rtol=1e-5)


def test_t5_max_length_per_open_sora_version(t5_dir):
    assert t5(str(t5_dir), version="1.1").max_length == 200
    assert t5(str(t5_dir), max_length=16).max_length == 16
    with pytest.raises(KinemaError, match="1.0, 1.1"):
        t5(str(t5_dir), version="2.0")


def test_long_prompt_is_truncated_with_a_warning(t5_dir):
    enc = t5(str(t5_dir), max_length=16)
    with pytest.warns(UserWarning, match="at most 16 tokens"):
        out = enc.encode("x" * 40)
    assert out.mask.sum().item() == 16


def test_empty_prompt_is_a_clear_error(t5_dir):
    enc = t5(str(t5_dir), max_length=16)
    with pytest.raises(KinemaError, match="prompt 0 is empty"):
        enc.encode("   ")
    assert enc.encode("", allow_empty=True).mask.sum().item() == 1  # negative prompts may be empty


def test_missing_t5_weights_say_how_to_provide_them(tmp_path):
    with pytest.raises(KinemaError, match="huggingface-cli download DeepFloyd/t5-v1_1-xxl"):
        t5(str(tmp_path / "nowhere"), local_files_only=True)


def test_minilm_is_pretrained_and_offline():
    enc = lookup("text_encoder", "minilm")(max_length=24)
    out = enc.encode(["a dog runs on grass", "a puppy running in a field", "stock market report"])
    assert out.y.shape == (3, 1, 24, 384)
    pooled = [(out.y[i, 0] * out.mask[i, :, None]).sum(0) / out.mask[i].sum() for i in range(3)]
    cos = torch.nn.functional.cosine_similarity
    # a pretrained sentence model puts paraphrases closer than unrelated text
    assert cos(pooled[0], pooled[1], dim=0) > cos(pooled[0], pooled[2], dim=0)


def test_class_label_encoder():
    enc = ClassLabelEncoder(num_classes=3, hidden_size=8, class_names=["walk", "run", "jump"])
    out = enc.encode(["run", "2", "walk"])
    assert out.y.shape == (3, 1, 1, 8) and out.mask.tolist() == [[1], [1], [1]]
    torch.testing.assert_close(out.y[0, 0, 0], enc.embedding.weight[1])
    torch.testing.assert_close(out.y[1, 0, 0], enc.embedding.weight[2])
    null = enc.encode([""], allow_empty=True)
    torch.testing.assert_close(null.y[0, 0, 0], enc.embedding.weight[3])
    with pytest.raises(KinemaError, match="walk, run, jump"):
        enc.encode(["swim"])


def test_class_label_encoder_round_trips(tmp_path):
    enc = ClassLabelEncoder(num_classes=2, hidden_size=4, class_names=["a", "b"])
    enc.save_pretrained(tmp_path)
    back = ClassLabelEncoder.from_pretrained(tmp_path)
    torch.testing.assert_close(back.encode("b").y, enc.encode("b").y)


def test_unconditional_encoder_ignores_prompts():
    out = UnconditionalEncoder(hidden_size=8).encode(["", "anything"])
    assert out.y.shape == (2, 1, 1, 8) and out.y.abs().sum() == 0


def test_registered_names_and_wrapping(t5_dir):
    from transformers import AutoTokenizer, T5EncoderModel

    from kinema.core import get_registry

    names = get_registry("text_encoder").names()
    assert {"t5", "clip", "minilm", "tiny-t5", "classes", "unconditional"} <= set(names)
    wrapped = as_text_encoder(T5EncoderModel.from_pretrained(t5_dir), AutoTokenizer.from_pretrained(t5_dir), 10)
    assert wrapped.encode("hi").y.shape == (1, 1, 10, 32)
    labels = ClassLabelEncoder(num_classes=2, hidden_size=4)
    assert as_text_encoder(labels, None, 1) is labels
