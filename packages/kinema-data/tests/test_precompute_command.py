"""`kinema data precompute`: clips and captions encoded once into feature shards, by registered encoders."""

import glob

import torch
from kinema.core import get_registry

from kinema.data.shards import read_feature_shards
from kinema.data.synthetic import write_dataset


class PoolingVAE:
    """A stand-in VAE: 2x average pooling in time and space (keeps the first frame, like a causal VAE)."""

    @classmethod
    def from_pretrained(cls, path):
        return cls()

    def eval(self):
        return self

    def encode_video(self, video, sample=True):
        first, rest = video[:, :, :1], video[:, :, 1:]
        pooled = torch.nn.functional.avg_pool3d(rest, (2, 2, 2))
        return torch.cat([torch.nn.functional.avg_pool3d(first, (1, 2, 2)), pooled], dim=2)


class LengthEncoder:
    """A stand-in text encoder: one token per character position holding the character code."""

    def __init__(self, max_length=8):
        self.max_length = max_length

    def encode(self, texts):
        class Out:
            pass

        out = Out()
        codes = torch.zeros(len(texts), self.max_length)
        for i, t in enumerate(texts):
            codes[i, : min(len(t), self.max_length)] = torch.tensor([float(ord(c)) for c in t[: self.max_length]])
        out.y, out.mask = codes[:, None, :, None].expand(-1, -1, -1, 2), (codes > 0).long()
        return out


def test_precompute_writes_latents_and_caption_features(tmp_path, kinema_cli):
    if "pooling-test-vae" not in get_registry("vae"):
        get_registry("vae").add("pooling-test-vae", PoolingVAE)
        get_registry("text_encoder").add("length-test-encoder", LengthEncoder)
    meta = write_dataset(4, tmp_path / "synth", seed=2, size=32, num_frames=5, ext="gif")
    (tmp_path / "vae").mkdir()
    result = kinema_cli("data", "precompute", meta, "-o", tmp_path / "features", "--vae", tmp_path / "vae",
                     "--vae-type", "pooling-test-vae", "--text-encoder", "length-test-encoder", "--text-max-length", 6,
                     "--num-frames", 5, "--image-size", 32, 32, "--batch-size", 3)
    assert result.exit_code == 0, result.output
    samples = list(read_feature_shards(sorted(glob.glob(str(tmp_path / "features" / "*.tar")))))
    assert len(samples) == 4
    from kinema.core.video import read_video, to_float

    import pandas as pd

    table = pd.read_csv(meta)
    for sample, row in zip(samples, table.to_dict("records")):
        expected = PoolingVAE().encode_video(to_float(read_video(row["path"]).frames)[None])[0]
        assert sample["latents"].shape == (3, 3, 16, 16)
        torch.testing.assert_close(sample["latents"], expected, atol=1e-5, rtol=0)
        assert sample["text"] == row["text"]
        assert sample["text_emb"].shape == (6, 2) and sample["text_emb"][0, 0] == ord(row["text"][0])
        assert sample["text_mask"].tolist() == [1] * 6
