from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import texture

from kinema.data.scorers.blur import BlurScorer
from kinema.data.scorers.flow import FlowScorer, flow_indices, flow_score
from kinema.data.scorers.ocr import OcrScorer


def _shifting(per_frame: tuple[float, float], num_frames: int = 31, size=(320, 576)) -> np.ndarray:
    """Window over a texture whose offset grows per_frame px per frame (rounded: exact every 10 frames)."""
    h, w = size
    big = texture(h + 40, w + 40, seed=3)
    frames = []
    for t in range(num_frames):
        dx, dy = round(per_frame[0] * t), round(per_frame[1] * t)
        frames.append(big[20 - dy : 20 - dy + h, 20 - dx : 20 - dx + w])  # content moves by (+dx, +dy)
    return np.stack(frames)


def test_flow_indices_follow_upstream():
    assert flow_indices(100) == [0, 10, 20, 30]
    assert flow_indices(16) == [0, 5, 10, 15]
    assert flow_indices(2) == [0, 1]


def test_static_video_has_zero_flow(make_clip):
    frames = np.repeat(texture(320, 576)[None], 31, axis=0)
    assert flow_score(frames) < 0.02
    path = make_clip("static.mp4", frames)
    assert FlowScorer().process({"path": path})["flow"] < 0.1


def test_known_shift_gives_its_magnitude(make_clip):
    frames = _shifting((0.3, 0.2))  # (3, 2) px between the scored frames 0, 10, 20, 30
    assert np.array_equal(frames[10][2:, 3:], frames[0][:-2, :-3])
    # upstream's score: mean of |dx| and |dy| over all pixels -> (3 + 2) / 2
    assert flow_score(frames[[0, 10, 20, 30]]) == pytest.approx(2.5, rel=0.08)
    path = make_clip("shift.mp4", frames)
    assert FlowScorer().process({"path": path, "num_frames": 31})["flow"] == pytest.approx(2.5, rel=0.1)


def test_flow_grows_with_speed():
    slow, fast = flow_score(_shifting((0.2, 0))[[0, 10, 20, 30]]), flow_score(_shifting((0.6, 0))[[0, 10, 20, 30]])
    assert fast > 2.5 * slow


def test_sharp_video_scores_higher_than_blurred(make_clip):
    sharp = np.stack([texture(96, 128, seed=s) for s in range(8)])
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in sharp])
    scorer = BlurScorer()
    assert scorer.process({"path": make_clip("sharp.mp4", sharp)})["blur"] > 3 * scorer.process(
        {"path": make_clip("blurred.mp4", blurred)})["blur"]


def _text_frames(text: str | None, num_frames: int = 12) -> np.ndarray:
    frame = np.full((240, 426, 3), 235, dtype=np.uint8)
    frame[150:, :] = (90, 140, 60)  # some scenery below
    if text:
        cv2.putText(frame, text, (20, 90), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 4, cv2.LINE_AA)
    return np.repeat(frame[None], num_frames, axis=0)


def test_rendered_text_scores_higher_ocr_than_none(make_clip):
    scorer = OcrScorer()
    scorer.check()
    with_text = scorer.process({"path": make_clip("text.mp4", _text_frames("OPEN SORA 2026"))})
    without = scorer.process({"path": make_clip("plain.mp4", _text_frames(None))})
    assert with_text["ocr_boxes"] >= 2 and with_text["ocr"] > 0.03
    assert without["ocr"] < 0.005 < with_text["ocr"]


@pytest.mark.parametrize("clip", ["video_humo-1.webp", "video_ltx2_3_t2v-1.webp", "video_wan2_2_14B_fun_camera-1.webp",
                                  "video_capybara_v0_1_video_edit-1.webp"])
def test_text_over_a_real_frame_raises_its_score(media_dir, make_clip, clip):
    from kinema.core.video import read_video

    frames = read_video(media_dir / clip, num_frames=12).frames.numpy().copy()
    # webp, not mp4: libwebp writes the same file every time, multi-threaded x264 does not, and Tesseract's
    # reading of compression noise varies with the bytes
    plain = OcrScorer().process({"path": make_clip("real.webp", frames)})
    assert plain["ocr_boxes"] == 0  # scenery is not read as words
    for f in frames:
        cv2.rectangle(f, (20, 120), (280, 190), (255, 255, 255), -1)
        cv2.putText(f, "SALE 50%", (30, 175), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 4, cv2.LINE_AA)
    # the words cover ~4% of the frame (their boxes, not the white band)
    with_text = OcrScorer().process({"path": make_clip("real_text.webp", frames)})
    assert with_text["ocr_boxes"] >= 1 and with_text["ocr"] > 0.02


def test_scores_are_added_as_columns_by_the_cli(make_clip, tmp_path, kinema_cli):
    path = make_clip("shift.mp4", _shifting((0.3, 0.2), num_frames=16, size=(64, 96)))
    pd.DataFrame({"path": [path]}).to_csv(tmp_path / "in.csv", index=False)
    for scorer in ("flow", "blur", "cmotion"):
        out = tmp_path / f"{scorer}.csv"
        result = kinema_cli("data", "score", scorer, tmp_path / "in.csv", "-o", out, "--workers", 1, "--no-progress")
        assert result.exit_code == 0, result.output
        assert pd.read_csv(out)[scorer].notna().all()
