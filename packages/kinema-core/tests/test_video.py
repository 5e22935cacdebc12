import numpy as np
import pytest
import torch

from kinema.core import KinemaError
from kinema.core.video import VideoReadError, probe_video, read_video, to_float, to_uint8, write_video


def numbered_frames(n=12, h=32, w=48):
    """Frame i is a flat grey of level 10*i + 5: the index survives lossy codecs."""
    levels = torch.arange(n, dtype=torch.float32) * 10 + 5
    return levels.view(n, 1, 1, 1).expand(n, h, w, 3).to(torch.uint8).contiguous()


def frame_indices(frames):
    return [round((float(f.float().mean()) - 5) / 10) for f in frames]


@pytest.mark.parametrize("ext", ["mp4", "webp", "gif"])
def test_round_trip_keeps_size_count_fps_and_order(tmp_path, ext):
    frames = numbered_frames()
    path = write_video(tmp_path / f"clip.{ext}", frames, fps=8)
    info = probe_video(path)
    assert (info.num_frames, info.height, info.width) == (12, 32, 48)
    assert info.fps == pytest.approx(8, rel=0.05)
    video = read_video(path)
    assert video.frames.shape == (12, 32, 48, 3) and video.frames.dtype == torch.uint8
    assert frame_indices(video.frames) == list(range(12))


@pytest.mark.parametrize("ext", ["mp4", "webp"])
def test_frame_selection_is_exact(tmp_path, ext):
    path = write_video(tmp_path / f"clip.{ext}", numbered_frames(20), fps=10)
    assert frame_indices(read_video(path, start=3, num_frames=5, step=3).frames) == [3, 6, 9, 12, 15]
    assert frame_indices(read_video(path, start=17).frames) == [17, 18, 19]


def test_asking_past_the_end_names_the_file(tmp_path):
    path = write_video(tmp_path / "short.mp4", numbered_frames(6), fps=10)
    with pytest.raises(VideoReadError, match="short.mp4.*ends after 6 frames"):
        read_video(path, start=2, num_frames=10)


def test_truncated_and_non_video_files_give_clear_errors(tmp_path):
    good = write_video(tmp_path / "good.mp4", numbered_frames(30, 64, 64), fps=10)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        read_video(truncated)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        probe_video(text)
    with pytest.raises(VideoReadError, match="no such file"):
        read_video(tmp_path / "missing.mp4")


def test_png_is_one_frame_and_odd_sizes_are_padded_for_h264(tmp_path):
    frames = numbered_frames(3, 31, 45)
    png = write_video(tmp_path / "still.png", frames[:1], fps=1)
    assert read_video(png).frames.shape == (1, 31, 45, 3)
    with pytest.raises(KinemaError, match="one frame"):
        write_video(tmp_path / "bad.png", frames, fps=1)
    with pytest.warns(UserWarning, match="even"):
        mp4 = write_video(tmp_path / "odd.mp4", frames, fps=4)
    assert probe_video(mp4).height == 32


def test_bad_writes_leave_no_file(tmp_path):
    with pytest.raises(KinemaError, match="uint8"):
        write_video(tmp_path / "float.mp4", numbered_frames().float(), fps=8)
    with pytest.raises(KinemaError, match="extension"):
        write_video(tmp_path / "clip.avi", numbered_frames(), fps=8)
    assert list(tmp_path.iterdir()) == []


def test_float_conversions_invert_each_other():
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    video = to_float(frames)
    assert video.shape == (3, 4, 8, 8) and video.min() >= -1 and video.max() <= 1
    assert torch.equal(to_uint8(video), frames)
