from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kinema.core.video import write_video

# Real clips with scene cuts (PySceneDetect's AdaptiveDetector, threshold 3): name -> cut frames
CLIPS_WITH_CUTS = {
    "video_wan_ati-1.webp": [15],
    "video_wan_vace_14B_t2v-1.webp": [47],
    "video_wan2_2_14B_fun_inpaint-1.webp": [51],
}


@pytest.fixture(scope="session")
def media_dir() -> Path:
    spec = importlib.util.find_spec("comfyui_workflow_templates_media_video")
    if spec is None:
        pytest.fail("install the test extra: pip install -e 'packages/kinema-data[test]'")
    return Path(spec.origin).parent / "templates"


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (blurred noise): good features for optical flow."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def pan_frames(direction: tuple[int, int], num_frames: int = 31, size=(144, 192), step: float = 0.4, seed: int = 0):
    """A camera panning over a big texture: window moves ``step`` px per frame (rounded) along ``direction``."""
    h, w = size
    margin = int(step * num_frames) + 4
    big = texture(h + 2 * margin, w + 2 * margin, seed)
    frames = []
    for t in range(num_frames):
        y = margin + direction[1] * round(step * t)
        x = margin + direction[0] * round(step * t)
        frames.append(big[y : y + h, x : x + w])
    return np.stack(frames)


@pytest.fixture
def make_clip(tmp_path):
    """Write frames to tmp_path/name and return the path."""

    def make(name: str, frames: np.ndarray, fps: float = 8.0) -> str:
        return str(write_video(tmp_path / name, frames, fps))

    return make


@pytest.fixture
def kinema_cli():
    from kinema.core.cli import build_cli

    cli = build_cli()
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke
