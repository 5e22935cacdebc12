import json

import pytest
import torch
from conftest import tiny_autoencoder_kl, tiny_causal_vae
from safetensors.torch import save_file

from kinema.core import KinemaError
from kinema.vae import CausalVideoVAE, inflate_autoencoder_kl, load_causal_vae, load_vae
from kinema.vae.inflate import inflate_kernel


@pytest.mark.parametrize("init", ["tail", "center", "average"])
def test_one_frame_inflated_vae_equals_2d_vae(init):
    vae2d = tiny_autoencoder_kl()
    vae3d = inflate_autoencoder_kl(vae2d, init=init, attn_impl="fixed")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        p2, p3 = vae2d.encode(x).latent_dist, vae3d.encode(x[:, :, None]).latent_dist
        assert torch.allclose(p2.mean, p3.mean[:, :, 0], atol=1e-5)
        assert torch.allclose(p2.logvar, p3.logvar[:, :, 0], atol=1e-5)
        out2, out3 = vae2d.decode(p2.mean).sample, vae3d.decode(p3.mean).sample
    assert out3.shape == (2, 3, 1, 32, 32)
    assert torch.allclose(out2, out3[:, :, 0], atol=1e-5)


def test_compat_attention_equals_fixed_at_one_frame():
    vae2d = tiny_autoencoder_kl()
    compat = inflate_autoencoder_kl(vae2d, attn_impl="compat_v100")
    fixed = inflate_autoencoder_kl(vae2d, attn_impl="fixed")
    x = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    v = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(compat.encode(x).latent_dist.mean, fixed.encode(x).latent_dist.mean, atol=1e-6)
        assert not torch.allclose(compat.encode(v).latent_dist.mean, fixed.encode(v).latent_dist.mean, atol=1e-4)


def test_inflate_kernel_layouts():
    w = torch.randn(4, 3, 3, 3)
    tail, center, avg = (inflate_kernel(w, 3, m) for m in ("tail", "center", "average"))
    assert torch.equal(tail[:, :, 2], w) and torch.count_nonzero(tail[:, :, :2]) == 0
    assert torch.equal(center[:, :, 1], w) and torch.count_nonzero(center[:, :, [0, 2]]) == 0
    assert torch.allclose(avg.sum(2), w)
    with pytest.raises(KinemaError, match="tail, center, average"):
        inflate_kernel(w, 3, "bad")


def test_tail_inflated_encoder_treats_frames_independently_before_time_mixing():
    # Tail init makes every conv per-frame; the first level's convs see no other frame at all.
    vae3d = inflate_autoencoder_kl(tiny_autoencoder_kl(), init="tail", attn_impl="fixed")
    block = vae3d.encoder.down[0].block[0]
    block.norm1, block.norm2 = torch.nn.Identity(), torch.nn.Identity()  # norms pool over time
    x = torch.randn(1, 8, 4, 8, 8)
    frames = torch.cat([block(x[:, :, t : t + 1]) for t in range(4)], dim=2)
    assert torch.allclose(block(x), frames, atol=1e-5)


def _write_upstream_folder(folder, vae, extra_state=None, config_extra=None):
    """config.json with the release-style string fields + diffusion_pytorch_model.safetensors."""
    cfg = {k: v for k, v in vae.config.items() if not k.startswith("_") and k not in ("attn_impl", "scaling_factor")}
    cfg = {"_class_name": "CausalVAEModel", "_diffusers_version": "0.27.2", **cfg, **(config_extra or {})}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    state = {k: v.contiguous() for k, v in vae.state_dict().items()}
    state.update(extra_state or {})
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))


def test_upstream_layout_loads_strictly_ignoring_loss_keys(tmp_path):
    vae = tiny_causal_vae(seed=3)
    loss_keys = {"loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight": torch.randn(4, 3, 4, 4)}
    _write_upstream_folder(tmp_path / "vae", vae, loss_keys)
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert cfg["encoder_conv_in"] == "CausalConv3d" and cfg["encoder_attention"] == "AttnBlock3D"
    loaded = load_vae(tmp_path / "vae")
    assert isinstance(loaded, CausalVideoVAE) and loaded.attn_impl == "compat_v100"
    for k, v in vae.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert load_causal_vae(tmp_path / "vae", attn_impl="fixed").attn_impl == "fixed"


def test_upstream_lightning_ckpt_loads(tmp_path):
    vae = tiny_causal_vae(seed=4)
    _write_upstream_folder(tmp_path / "vae", vae)
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"state_dict": {**vae.state_dict(), "loss.logvar": torch.zeros(())}, "global_step": 7},
               tmp_path / "vae" / "last.ckpt")
    loaded = load_causal_vae(tmp_path / "vae")
    assert torch.equal(loaded.encoder.conv_in.conv.weight, vae.encoder.conv_in.conv.weight)


def test_mismatched_weights_are_named(tmp_path):
    vae = tiny_causal_vae()
    state = {k: v for k, v in vae.state_dict().items() if not k.startswith("decoder.conv_out")}
    _write_upstream_folder(tmp_path / "vae", vae)
    save_file({**state, "encoder.extra.weight": torch.zeros(1)},
              str(tmp_path / "vae" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(KinemaError, match=r"2 missing .*decoder\.conv_out.*1 unexpected .*encoder\.extra"):
        load_causal_vae(tmp_path / "vae")
    with pytest.raises(KinemaError, match="no config.json"):
        load_vae(tmp_path)
