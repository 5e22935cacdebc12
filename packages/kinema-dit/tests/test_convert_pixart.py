import pytest
import torch

from kinema.core import KinemaError
from kinema.dit.convert import CheckpointMismatchError, load
from kinema.dit.convert.pixart import fit_caption_length
from kinema.dit.pixart import PixArt


@pytest.fixture
def pixart(tiny, randomize):
    torch.manual_seed(0)
    return randomize(PixArt(**tiny, input_size=8, space_scale=0.5)).eval()


@pytest.fixture
def checkpoint(tmp_path, pixart):
    state = pixart.state_dict()
    assert state["x_embedder.proj.weight"].shape == (48, 4, 2, 2) and "pos_embed" in state  # upstream layout
    path = tmp_path / "PixArt-XL-2-256x256.pth"
    torch.save({"state_dict": state}, path)
    return path


def image_batch(captions):
    g = torch.Generator().manual_seed(5)
    y, mask = captions(2)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([17, 640]), y, mask


def test_stdit_on_one_frame_equals_pixart(checkpoint, pixart, captions):
    stdit = load("pixart", checkpoint, num_heads=4)
    assert tuple(stdit.config.input_size) == (1, 8, 8) and stdit.config.space_scale == 0.5
    assert all(torch.equal(b.attn_temp.proj.weight, torch.zeros_like(b.attn_temp.proj.weight)) for b in stdit.blocks)
    x, t, y, mask = image_batch(captions)
    with torch.no_grad():
        assert torch.equal(stdit(x[:, :, None], t, y, mask)[:, :, 0], pixart(x, t, y, mask))


def test_stdit_video_frames_each_equal_pixart_at_init(checkpoint, pixart, captions):
    stdit = load("pixart", checkpoint, num_heads=4, input_size=[3, 8, 8])
    x, t, y, mask = image_batch(captions)
    video = torch.stack([x, x.flip(-1), -x], dim=2)
    with torch.no_grad():
        out = stdit(video, t, y, mask)
        for f in range(3):
            torch.testing.assert_close(out[:, :, f], pixart(video[:, :, f], t, y, mask), rtol=1e-5, atol=1e-6)


def test_stdit2_takes_pixart_weights_and_extends_the_null_caption(checkpoint, pixart, captions):
    stdit2 = load("pixart", checkpoint, target="stdit2", num_heads=4, model_max_length=8, qk_norm=False,
                  input_sq_size=32)
    source = pixart.state_dict()
    loaded = stdit2.state_dict()
    assert torch.equal(loaded["x_embedder.proj.weight"], source["x_embedder.proj.weight"].unsqueeze(2))
    for key in ("blocks.1.attn.qkv.weight", "blocks.0.cross_attn.kv_linear.bias", "final_layer.linear.weight",
                "t_block.1.weight", "y_embedder.y_proj.fc2.weight", "blocks.1.scale_shift_table"):
        assert torch.equal(loaded[key], source[key])
    y_emb = loaded["y_embedder.y_embedding"]
    assert y_emb.shape == (8, 16)
    assert torch.equal(y_emb[:6], source["y_embedder.y_embedding"])
    assert torch.equal(y_emb[6], source["y_embedder.y_embedding"][5]) and torch.equal(y_emb[7], y_emb[5])

    # With the (new, not in PixArt) size embedders silenced and the pixel size matching PixArt's scale
    # (sqrt(16*16) / 32 = 0.5), STDiT2 on one frame computes the PixArt model.
    with torch.no_grad():
        for embedder in (stdit2.csize_embedder, stdit2.ar_embedder):
            embedder.mlp[2].weight.zero_()
            embedder.mlp[2].bias.zero_()
    x, t, y, mask = image_batch(captions)
    y8 = torch.cat([y, y[:, :, -1:].expand(-1, -1, 2, -1)], dim=2)
    mask8 = torch.cat([mask, torch.zeros(2, 2, dtype=mask.dtype)], dim=1)
    with torch.no_grad():
        out = stdit2(x[:, :, None], t, y8, mask8, num_frames=1, height=16, width=16, ar=1.0, fps=24)
        torch.testing.assert_close(out[:, :, 0], pixart(x, t, y, mask), rtol=1e-5, atol=1e-6)


def test_stdit2_defaults_are_the_xl_flavour(checkpoint):
    stdit2 = load("pixart", checkpoint, target="stdit2", num_heads=4)
    assert (stdit2.config.model_max_length, stdit2.config.qk_norm, stdit2.config.input_sq_size) == (200, True, 512)


def test_fit_caption_length_truncates_and_repeats():
    rows = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(fit_caption_length(rows, 2), rows[:2])
    assert torch.equal(fit_caption_length(rows, 6)[4:], rows[3:].expand(2, 3))


def test_extra_checkpoint_key_is_an_error(tmp_path, pixart):
    state = pixart.state_dict()
    state["ar_embedder.mlp.0.weight"] = torch.zeros(16, 256)  # PixArt-MS size embedder: not in STDiT
    torch.save({"state_dict": state}, tmp_path / "ms.pth")
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(1\): ar_embedder.mlp.0.weight"):
        load("pixart", tmp_path / "ms.pth", num_heads=4)


def test_missing_pixart_key_is_an_error(tmp_path, pixart):
    state = pixart.state_dict()
    del state["blocks.0.mlp.fc2.bias"]
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): blocks.0.mlp.fc2.bias"):
        load("pixart", tmp_path / "bad.pth", num_heads=4)


def test_video_checkpoint_is_not_pixart(tmp_path, pixart):
    state = pixart.state_dict()
    state["x_embedder.proj.weight"] = state["x_embedder.proj.weight"].unsqueeze(2)
    torch.save(state, tmp_path / "stdit.pth")
    with pytest.raises(KinemaError, match="not a PixArt"):
        load("pixart", tmp_path / "stdit.pth")


def test_cli_pixart_to_stdit2_folder(tmp_path, checkpoint):
    from click.testing import CliRunner

    from kinema.core.cli import build_cli
    from kinema.dit.stdit2 import STDiT2

    out = tmp_path / "stdit2-init"
    args = ["dit", "convert", "--format", "pixart", "--target", "stdit2", str(checkpoint), "-o", str(out),
            "--set", "num_heads=4"]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    model = STDiT2.from_pretrained(out)
    assert model.config.model_max_length == 200 and tuple(model.config.patch_size) == (1, 2, 2)
    assert torch.equal(model.y_embedder.y_embedding[150], torch.load(checkpoint)["state_dict"]
                       ["y_embedder.y_embedding"][-1])
