"""`kinema sample --grid`: every prompt's video side by side in one file, the single videos kept too."""

import json

import torch
from kinema.core.video import read_video

from kinema.sample.grid import GAP, grid_shape, tile_videos
from sample_runner import kinema


def test_grid_shape_is_near_square():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 9, 10)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3),
                                                                (3, 4)]


def test_tile_videos_places_each_clip_in_its_cell():
    clips = [torch.full((3, 4, 6, 3), 10 * (i + 1), dtype=torch.uint8) for i in range(3)]
    clips[2] = clips[2][:2]  # a shorter clip holds its last frame
    out = tile_videos(clips, gap=1)
    assert out.shape == (3, 2 * 4 + 1, 2 * 6 + 1, 3)
    assert torch.all(out[:, :4, :6] == 10) and torch.all(out[:, :4, 7:] == 20) and torch.all(out[:, 5:, :6] == 30)
    assert torch.all(out[:, 5:, 7:] == 0) and torch.all(out[:, 4] == 0)  # the empty cell and the gap are black


def test_grid_of_prompts_matches_the_single_images(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving right\na blue square moving up\na green triangle moving left\n")
    # one frame per clip: PNGs are lossless, so cells compare exactly with the single images
    run = kinema("sample", "--prompt-file", prompts, "--grid", "-o", "grid.png", "--num-frames", "1", "--steps", "2",
                 cwd=tmp_path)
    assert run.exit_code == 0, run.output
    grid = read_video(tmp_path / "grid.png").frames[0]
    assert grid.shape == (2 * 32 + GAP, 2 * 32 + GAP, 3)
    singles = [read_video(tmp_path / f"grid_{i}.png").frames[0] for i in range(3)]
    assert torch.equal(grid[:32, :32], singles[0])
    assert torch.equal(grid[:32, 32 + GAP:], singles[1])
    assert torch.equal(grid[32 + GAP:, :32], singles[2])
    assert not torch.equal(singles[0], singles[1])
    record = json.loads((tmp_path / "grid.json").read_text())
    assert record["grid"] == ["grid_0.png", "grid_1.png", "grid_2.png"] and len(record["prompts"]) == 3
    assert json.loads((tmp_path / "grid_1.json").read_text())["prompt"] == "a blue square moving up"


def test_grid_of_one_prompt_is_the_video_itself(tmp_path):
    run = kinema("sample", "a red circle", "--grid", "-o", "one.mp4", "--num-frames", "5", "--steps", "1",
                 cwd=tmp_path)
    assert run.exit_code == 0, run.output
    grid, single = read_video(tmp_path / "one.mp4").frames, read_video(tmp_path / "one_0.mp4").frames
    assert grid.shape == single.shape == (5, 32, 32, 3)
