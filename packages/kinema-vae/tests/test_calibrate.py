import shutil

import torch
from click.testing import CliRunner
from conftest import tiny_autoencoder_kl, tiny_causal_vae

from kinema.core.cli import build_cli
from kinema.vae.data import load_clip
from kinema.vae.loading import load_vae


def _clip_folder(clips, tmp_path, n=3):
    data = tmp_path / "data"
    data.mkdir()
    for clip in clips[:n]:
        shutil.copy(clip, data / clip.name)
    return data, sorted(data.iterdir())


def test_calibrated_latents_have_zero_mean_and_unit_std_per_channel(clips, tmp_path):
    data, paths = _clip_folder(clips, tmp_path)
    tiny_causal_vae().save_pretrained(tmp_path / "vae")
    res = CliRunner().invoke(build_cli(), ["vae", "calibrate", str(data), "--vae", str(tmp_path / "vae"), "-o",
                                           str(tmp_path / "cal"), "--frames", "5", "--resolution", "16"])
    assert res.exit_code == 0, res.output
    raw, cal = load_vae(tmp_path / "vae"), load_vae(tmp_path / "cal")
    x = torch.stack([load_clip(p, 5, 16) for p in paths])
    with torch.no_grad():
        z_raw, z = raw.encode_video(x, sample=False), cal.encode_video(x, sample=False)
        # dense reference: the statistics of the uncalibrated latents over the same clips
        mean, std = z_raw.mean(dim=(0, 2, 3, 4)), z_raw.std(dim=(0, 2, 3, 4), unbiased=False)
        assert torch.allclose(torch.tensor(cal.config.latents_mean), mean / raw.scaling_factor, atol=1e-4)
        assert torch.allclose(z.mean(dim=(0, 2, 3, 4)), torch.zeros(4), atol=1e-4)
        assert torch.allclose(z.std(dim=(0, 2, 3, 4), unbiased=False), torch.ones(4), atol=1e-4)
        assert not torch.allclose(std / raw.scaling_factor, torch.ones(4), atol=0.05)  # calibration did something
        # the statistics cancel on the way back: same video as the uncalibrated VAE
        assert torch.allclose(cal.decode_video(z), raw.decode_video(z_raw), atol=1e-5)


def test_calibrate_in_place_and_wrong_vae_kind(clips, tmp_path):
    data, _ = _clip_folder(clips, tmp_path, n=1)
    tiny_causal_vae().save_pretrained(tmp_path / "vae")
    cli = build_cli()
    res = CliRunner().invoke(cli, ["vae", "calibrate", str(data), "--vae", str(tmp_path / "vae"), "--frames", "5",
                                   "--resolution", "16"])
    assert res.exit_code == 0, res.output
    assert len(load_vae(tmp_path / "vae").config.latents_std) == 4
    tiny_autoencoder_kl().save_pretrained(tmp_path / "sd")
    res = CliRunner().invoke(cli, ["vae", "calibrate", str(data), "--vae", str(tmp_path / "sd")])
    assert res.exit_code != 0 and "calibrate works on a CausalVideoVAE" in res.output
