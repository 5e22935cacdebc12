"""A pipeline folder whose transformer/ or vae/ config.json does not describe the weights: one line."""

import json

import pytest
from kinema.core import KinemaError

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.testing import make_tiny_pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("mismatch") / "tiny"
    make_tiny_pipeline(path)
    return path


def _copy_with(folder, target, component, **changes):
    KinemaVideoPipeline.from_pretrained(folder).save_pretrained(target)
    config_path = target / component / "config.json"
    config = json.loads(config_path.read_text())
    config.update(changes)
    config_path.write_text(json.dumps(config))
    return target


def test_transformer_config_that_disagrees_with_the_weights(folder, tmp_path):
    bad = _copy_with(folder, tmp_path / "bad", "transformer", hidden_size=96)
    with pytest.raises(KinemaError) as err:
        KinemaVideoPipeline.from_pretrained(bad)
    message = str(err.value)
    assert "\n" not in message and str(bad / "transformer") in message
    assert "weights [48, 4, 1, 2, 2], config [96, 4, 1, 2, 2]" in message and "re-export the model" in message


def test_vae_config_that_disagrees_with_the_weights(folder, tmp_path):
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    kl = dict(vae_config["autoencoder_kl"], latent_channels=8)
    bad = _copy_with(folder, tmp_path / "bad", "vae", autoencoder_kl=kl)
    with pytest.raises(KinemaError) as err:
        KinemaVideoPipeline.from_pretrained(bad)
    message = str(err.value)
    assert "\n" not in message and str(bad / "vae") in message and "parameters differ in shape" in message
