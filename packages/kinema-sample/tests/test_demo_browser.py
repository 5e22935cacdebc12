"""`kinema demo`: the generation behind the page, and the page itself driven in headless Chromium.

The browser test serves the demo for a tiny random pipeline on a free loopback port, types a prompt,
clicks "Generate video" and waits until the result plays in the page's <video>. A screenshot is kept under
$KINEMA_TEST_ARTIFACTS (default: the test's tmp dir). It needs Debian's chromium (apt: chromium).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from kinema.core import KinemaError
from kinema.core.video import probe_video, read_video
from kinema.sample.demo import (PIPELINE_DEFAULT_SIZE, Generator, Request, build_demo, check_port_free, frame_range,
                             output_size, resolution_choices)
from kinema.sample.testing import make_tiny_pipeline

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-pipeline")
    make_tiny_pipeline(path)
    return path


@pytest.fixture(scope="module")
def pipe(pipeline_dir):
    from kinema.sample.pipeline import KinemaVideoPipeline

    pipe = KinemaVideoPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def request(**overrides) -> Request:
    fields = dict(prompt="a red car on a beach", reference=None, resolution=PIPELINE_DEFAULT_SIZE,
                  aspect_ratio="9:16", num_frames=6, steps=3, guidance_scale=4.0, seed=7)
    return Request(**{**fields, **overrides})


# ------------------------------------------------------------------ without a browser


def test_missing_gradio_tells_how_to_install(monkeypatch, pipe):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail
    with pytest.raises(KinemaError, match=r'pip install "kinema-sample\[demo\]"'):
        build_demo(pipe)


def test_build_demo_from_a_folder(pipeline_dir, tmp_path):
    import gradio

    demo = build_demo(pipeline_dir, output_dir=tmp_path)
    assert isinstance(demo, gradio.Blocks)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Prompt", "Resolution", "Sampling steps", "Seed", "Video", "Image"} <= labels


def test_choices_come_from_the_pipeline(pipe):
    values = [value for _, value in resolution_choices(pipe)]
    assert values[0] == PIPELINE_DEFAULT_SIZE  # the tiny pipeline has its own 32x32 default
    assert {"144p", "240p", "480p", "720p"} <= set(values)
    assert output_size(pipe, PIPELINE_DEFAULT_SIZE, "9:16") == (32, 32)
    # Open-Sora's table: 144p at 9:16 (height:width) is 144x256, landscape
    assert output_size(pipe, "144p", "9:16") == (144, 256)
    assert output_size(pipe, "144p", "16:9") == (256, 144)
    assert frame_range(pipe) == (2, 128, 1)  # frame-wise VAE: any length
    causal = make_tiny_pipeline(vae="causal")
    assert frame_range(causal) == (5, 129, 4)  # causal VAE: 1 + 4k frames


def test_generate_video_and_image_files(pipe, tmp_path):
    generate = Generator(pipe, tmp_path)
    video_path, summary = generate(request(), image=False)
    info = probe_video(video_path)
    assert video_path.suffix == ".mp4" and video_path.parent == tmp_path
    assert (info.num_frames, info.height, info.width) == (6, 32, 32)
    assert "6 frames" in summary and "seed 7" in summary

    image_path, summary = generate(request(resolution="144p", aspect_ratio="9:16"), image=True)
    frames = read_video(image_path).frames
    assert image_path.suffix == ".png" and frames.shape == (1, 144, 256, 3)
    assert summary.startswith("image, 256x144")

    again, _ = generate(request(), image=False)
    other_seed, _ = generate(request(seed=8), image=False)
    first, second, third = (read_video(p).frames for p in (video_path, again, other_seed))
    assert torch.equal(first, second), "the same seed must give the same video"
    assert not torch.equal(first, third)


def test_reference_image_means_image_to_video(pipe, tmp_path):
    """A reference image is passed on with mask_strategy "0" (first frame) and changes the result."""
    calls = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, *args, **kwargs):
            calls.append(kwargs)
            return self.inner(*args, **kwargs)

    generate = Generator(Recording(pipe), tmp_path)
    reference, _ = generate(request(), image=True)
    plain, _ = generate(request(), image=False)
    conditioned, summary = generate(request(reference=str(reference)), image=False)
    assert (calls[1]["reference"], calls[1]["mask_strategy"]) == (None, None)
    assert (calls[2]["reference"], calls[2]["mask_strategy"]) == (str(reference), "0")
    assert "conditioned on the reference image" in summary
    assert not torch.equal(read_video(plain).frames, read_video(conditioned).frames)


def test_bad_input_is_a_clear_error(pipe, tmp_path):
    generate = Generator(pipe, tmp_path)
    with pytest.raises(KinemaError, match="prompt"):
        generate(request(prompt="  "), image=False)
    with pytest.raises(KinemaError, match="seed"):
        generate(request(seed=-1), image=False)
    assert not list(tmp_path.iterdir())


def test_busy_port_is_reported_before_loading_models():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(KinemaError, match=f"127.0.0.1:{port}.*--port"):
            check_port_free("127.0.0.1", port)


# ------------------------------------------------------------------ in headless Chromium


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the demo server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the demo server did not answer on {url} within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture
def demo_server(pipeline_dir, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    output_dir = tmp_path / "outputs"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "kinema.sample.demo", "--model", str(pipeline_dir), "--port", str(port),
             "--output-dir", str(output_dir), "--device", "cpu"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, server, log)
        yield url, output_dir, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def artifacts_dir(tmp_path) -> Path:
    path = Path(os.environ.get("KINEMA_TEST_ARTIFACTS") or tmp_path / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


VIDEO_IS_PLAYING = """() => {
    const video = document.querySelector('#output-video video');
    return video !== null && !!video.currentSrc && !video.paused && video.readyState >= 2;
}"""


IMAGE_IS_SHOWN = """() => {
    const img = document.querySelector('#output-image img');
    return img !== null && img.complete && img.naturalWidth === 32 && img.offsetParent !== null;
}"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt: chromium)")
def test_generate_video_plays_in_the_browser(demo_server, artifacts_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    url, output_dir, log = demo_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(url)
            page.locator("#prompt textarea").fill("a red car driving along a beach at sunset")
            frames = page.locator("#num-frames input[type=number]")
            frames.fill("12")
            frames.press("Enter")
            steps = page.locator("#steps input[type=number]")
            steps.fill("4")
            steps.press("Enter")
            page.locator("#generate-video").click()

            page.wait_for_function(VIDEO_IS_PLAYING, timeout=60_000)
            first = page.evaluate("document.querySelector('#output-video video').currentTime")
            page.wait_for_timeout(400)
            second = page.evaluate("document.querySelector('#output-video video').currentTime")
            status = page.locator("#status").inner_text()
            screenshot = artifacts_dir / "kinema-demo-video.png"
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"demo screenshot: {screenshot}")

            page.locator("#generate-image").click()
            page.wait_for_function(IMAGE_IS_SHOWN, timeout=60_000)
            video_hidden = page.evaluate("document.querySelector('#output-video video') === null "
                                         "|| document.querySelector('#output-video video').offsetParent === null")
            image_status = page.locator("#status").inner_text()

            page.locator("#resolution label", has_text="144p").click()
            page.locator("#aspect-ratio label", has_text="16:9 portrait").click()
            page.locator("#size-note", has_text="144x256").wait_for(timeout=10_000)
        finally:
            browser.close()

    assert first != second, "the video should be playing (its time advances)"
    assert "12 frames" in status and "4 steps" in status and "32x32" in status, status
    written = sorted(output_dir.glob("*.mp4"))
    assert len(written) == 1, log.read_text()
    assert probe_video(written[0]).num_frames == 12
    assert video_hidden and image_status.startswith("image, 32x32"), image_status
    assert len(list(output_dir.glob("*.png"))) == 1
