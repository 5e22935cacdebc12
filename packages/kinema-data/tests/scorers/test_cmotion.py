from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import pan_frames, texture

from kinema.data.scorers.cmotion import CameraMotionScorer, camera_motion, cmotion_indices, video_label


@pytest.mark.parametrize(
    "window_moves, label",
    [((1, 0), "pan right"), ((-1, 0), "pan left"), ((0, 1), "tilt down"), ((0, -1), "tilt up")],
)
def test_synthetic_pans_are_classified_by_direction(window_moves, label, make_clip):
    # the camera (window) moves right -> content moves left -> "pan right", as upstream labels it
    frames = pan_frames(window_moves, num_frames=31)
    assert camera_motion(frames[cmotion_indices(31)]) == label
    path = make_clip("pan.mp4", frames)
    assert CameraMotionScorer().process({"path": path})["cmotion"] == label


def test_static_and_zoom():
    still = np.repeat(texture(144, 192)[None], 31, axis=0)
    assert camera_motion(still[cmotion_indices(31)]) == "static"
    big = texture(192, 256, seed=5)
    zoom_in = []
    for t in range(31):  # crop shrinks around the centre: content grows outwards
        margin_y, margin_x = 1 + t, round(1 + t * 4 / 3)
        crop = big[margin_y : 192 - margin_y, margin_x : 256 - margin_x]
        zoom_in.append(cv2.resize(crop, (256, 192), interpolation=cv2.INTER_LINEAR))
    zoom_in = np.stack(zoom_in)
    assert camera_motion(zoom_in[cmotion_indices(31)]) == "zoom in"
    assert camera_motion(zoom_in[::-1][cmotion_indices(31)]) == "zoom out"


def test_video_label_rule():
    assert video_label(["pan left", "pan left", "static"]) == "pan left"
    assert video_label(["pan left", "static"]) == "unknown"
    assert video_label(["pan left", "tilt up"]) == "pan/tilt"
    assert video_label(["pan left", "zoom in"]) == "dynamic"
