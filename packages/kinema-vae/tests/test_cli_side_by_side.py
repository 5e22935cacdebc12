"""`kinema vae reconstruct --side-by-side` and the progress bars of the VAE commands."""

import io
import shutil
import sys

import pytest
import torch
from click.testing import CliRunner

from kinema.core.video import probe_video, read_video, to_float, to_uint8
from kinema.vae.data import load_clip
from kinema.vae.interface import format_video_shape
from kinema.vae.loading import load_vae
from kinema.vae.metrics import psnr, ssim
from kinema.core.progress import progress_bar


def _unit(video):  # [3,T,H,W] in [-1,1] -> [3,T,H,W] in [0,1], quantised as the written file is
    return to_uint8(video).permute(3, 0, 1, 2).float() / 255


def _table_row(output: str, name: str) -> list[float]:
    row = next(line for line in output.splitlines() if line.startswith(name))
    return [float(v) for v in row.split()[1:]]


def test_side_by_side_is_original_then_reconstruction(cli, vae_dir, clips, tmp_path):
    src, out = clips[0], tmp_path / "pair.mp4"
    res = CliRunner().invoke(cli, ["vae", "reconstruct", str(src), "-o", str(out), "--vae", str(vae_dir),
                                   "--frames", "8", "--frame-policy", "pad", "--resolution", "32", "--side-by-side"])
    assert res.exit_code == 0, res.output
    # what the command encoded: SRC read with the same frame policy (8 frames padded to 9)
    with pytest.warns(UserWarning, match="padded"):
        original = format_video_shape(load_clip(src, 8, 32)[None], 4, 8, "pad")[0]
    with torch.no_grad():
        vae = load_vae(vae_dir)
        recon = vae.decode_video(vae.encode_video(original[None], sample=False))[0].clamp(-1, 1)
    written = to_float(read_video(out).frames)
    assert written.shape == (3, 9, 32, 64)
    info = probe_video(out)
    assert info.num_frames == 9 and info.fps == pytest.approx(probe_video(src).fps, rel=1e-3)
    left, right = written[..., :32], written[..., 32:]
    codec_error = 0.05  # h264 at crf 18 on [-1,1] pixels
    assert (left - original).abs().mean() < codec_error
    # a random tiny VAE decodes high-frequency noise, which h264 smooths: the right half is far nearer the
    # reconstruction than the original, though not within the left half's bound
    assert (right - recon).abs().mean() < 0.25 * (right - original).abs().mean()
    # the printed PSNR / SSIM are those of this clip's original against its reconstruction
    printed_psnr, printed_ssim = _table_row(res.stdout, src.name)
    assert printed_psnr == pytest.approx(psnr(_unit(original), _unit(recon)).item(), abs=1e-3)
    assert printed_ssim == pytest.approx(ssim(_unit(original), _unit(recon)).item(), abs=1e-3)
    assert res.stdout.splitlines()[0].split() == ["clip", "psnr", "ssim"]


def test_side_by_side_for_a_folder_mirrors_its_layout(cli, vae_dir, clips, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(clips[0], src / clips[0].name)
    shutil.copy(clips[1], src / "sub" / clips[1].name)
    res = CliRunner().invoke(cli, ["vae", "reconstruct", str(src), "-o", str(tmp_path / "out"), "--vae",
                                   str(vae_dir), "--frames", "5", "--resolution", "32", "--side-by-side"])
    assert res.exit_code == 0, res.output
    outputs = [tmp_path / "out" / (clips[0].stem + ".mp4"), tmp_path / "out" / "sub" / (clips[1].stem + ".mp4")]
    for path in outputs:
        info = probe_video(path)
        assert (info.num_frames, info.height, info.width) == (5, 32, 64)
    assert len(_table_row(res.stdout, clips[1].name)) == 2


def test_progress_bars_on_stderr_and_quiet_with_no_progress(cli, vae_dir, clips, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for clip in clips[:2]:
        shutil.copy(clip, src / clip.name)
    args = ["vae", "reconstruct", str(src), "-o", str(tmp_path / "out"), "--vae", str(vae_dir), "--frames", "5",
            "--resolution", "16"]
    shown = CliRunner().invoke(cli, args + ["--progress"])
    assert shown.exit_code == 0, shown.output
    assert "reconstruct: 100%" in shown.stderr and "2/2" in shown.stderr
    assert "100%" not in shown.stdout and shown.stdout.splitlines()[-1].startswith("mean")
    quiet = CliRunner().invoke(cli, args + ["--no-progress"])
    assert quiet.exit_code == 0, quiet.output
    assert "%|" not in quiet.stderr and quiet.stdout == shown.stdout

    ev = CliRunner().invoke(cli, ["vae", "eval", str(src), "--vae", str(vae_dir), "--frames", "5",
                                  "--resolution", "16", "--progress"])
    assert ev.exit_code == 0, ev.output
    assert "eval: 100%" in ev.stderr and "2/2" in ev.stderr
    ev = CliRunner().invoke(cli, ["vae", "eval", str(src), "--reconstructed", str(tmp_path / "out"),
                                  "--frames", "0", "--resolution", "16", "--no-progress"])
    assert ev.exit_code == 0, ev.output
    assert "%|" not in ev.stderr

    cal = CliRunner().invoke(cli, ["vae", "calibrate", str(src), "--vae", str(vae_dir), "-o", str(tmp_path / "cal"),
                                   "--frames", "5", "--resolution", "16", "--progress"])
    assert cal.exit_code == 0, cal.output
    assert "calibrate: 100%" in cal.stderr and "1/1" in cal.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_by_default_only_on_a_terminal(monkeypatch):
    for stream, expect_bar in ((_Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(progress_bar(range(3), desc="clips", enabled=None)) == [0, 1, 2]
        assert ("clips: 100%" in stream.getvalue()) is expect_bar
