"""A VAE folder whose config.json does not describe its weights: one line naming folder, parameters, count, fix."""

import json

import pytest
from kinema.core import KinemaError

from kinema.vae.causal_vae import CausalVideoVAE, tiny_config
from kinema.vae.framewise import FramewiseSDVAE
from kinema.vae.loading import load_vae

KL = {"down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
      "block_out_channels": [8, 8], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 4,
      "sample_size": 16}


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _assert_one_line(err, folder):
    message = str(err.value)
    assert "\n" not in message and str(folder) in message
    assert "parameters differ in shape" in message and "re-export the model" in message
    return message


def test_framewise_vae_config_that_disagrees_with_the_weights(tmp_path):
    FramewiseSDVAE(autoencoder_kl=KL).save_pretrained(tmp_path / "vae")
    _edit_config(tmp_path / "vae", autoencoder_kl={**KL, "block_out_channels": [16, 16], "norm_num_groups": 8})
    with pytest.raises(KinemaError) as err:
        load_vae(tmp_path / "vae")
    message = _assert_one_line(err, tmp_path / "vae")
    assert "weights [8, 3, 3, 3], config [16, 3, 3, 3]" in message and " more)" in message


def test_causal_vae_config_that_disagrees_with_the_weights(tmp_path):
    CausalVideoVAE.from_config(tiny_config()).save_pretrained(tmp_path / "vae")
    _edit_config(tmp_path / "vae", **tiny_config(hidden_size=16))
    with pytest.raises(KinemaError) as err:
        load_vae(tmp_path / "vae")
    _assert_one_line(err, tmp_path / "vae")
