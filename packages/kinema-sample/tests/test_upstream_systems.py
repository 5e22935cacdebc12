"""From the published files to a video, for each upstream system, exactly as docs/<system>.md says.

Each test writes tiny versions of the system's published files in their upstream layout, at the names the page
downloads them to (a `.pth` state dict with its position tables, a Hugging Face STDiT2 folder, a diffusers-based
LatteT2V folder, an SD AutoencoderKL folder, a CausalVAEModel release folder with `loss.*` keys, a T5 folder in
transformers' layout), then runs every `kinema` command of the page's first shell block and checks the videos.
"""

import json
import shlex
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from kinema.core.cli import build_cli
from kinema.core.video import read_video
from safetensors.torch import save_file
from upstream_files import T5_WIDTH, write_causal_vae_release, write_sd_vae, write_t5

DOCS = Path(__file__).resolve().parents[3] / "docs"


def documented_commands(page: str) -> list[str]:
    """The `kinema` lines of the page's first ```bash block (the download lines are what the test writes)."""
    text = (DOCS / page).read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert all(line.startswith(("kinema ", "huggingface-cli ")) for line in lines), lines
    return [line for line in lines if line.startswith("kinema ")]


def run_page(page: str, cwd: Path, monkeypatch) -> None:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KINEMA_PIPELINE", "")
    for command in documented_commands(page):
        result = CliRunner().invoke(build_cli(), shlex.split(command)[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"{command}\n{result.output}"


def frames_of(path: str) -> tuple:
    video = read_video(path)
    assert video.frames.dtype == torch.uint8 and video.frames.float().std() > 0
    return tuple(video.frames.shape)


# ------------------------------------------------------------------------------- the systems


def test_opensora_1_0(tmp_path, monkeypatch):
    from kinema.dit.stdit import STDiT

    torch.manual_seed(0)  # a 16x256x256 checkpoint: its position tables say so (space scale 0.5); 16 heads as released
    model = STDiT(input_size=(16, 32, 32), hidden_size=64, depth=1, num_heads=16, caption_channels=T5_WIDTH,
                  model_max_length=120, space_scale=0.5)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "OpenSora-v1-16x256x256.pth")
    write_sd_vae(tmp_path / "sd-vae-ft-ema")
    write_t5(tmp_path / "t5-v1_1-xxl")
    run_page("opensora-1.0.md", tmp_path, monkeypatch)
    assert frames_of("waterfall.mp4") == (16, 256, 256, 3)
    index = json.loads(Path("opensora-1.0-16x256x256/model_index.json").read_text())
    assert index["defaults"]["num_inference_steps"] == 100 and index["cfg_channel"] == 3


def test_opensora_1_1(tmp_path, monkeypatch):
    from kinema.dit.stdit2 import STDiT2

    torch.manual_seed(0)
    kwargs = dict(hidden_size=48, depth=1, num_heads=4, caption_channels=T5_WIDTH, model_max_length=200,
                  qk_norm=True, input_sq_size=512, in_channels=4, patch_size=[1, 2, 2])
    model = STDiT2(**kwargs)
    hub = tmp_path / "OpenSora-STDiT-v2-stage3"  # what transformers saved for the release: config + safetensors
    hub.mkdir()
    (hub / "config.json").write_text(json.dumps({
        "architectures": ["STDiT2"], "model_type": "STDiT2", "class_dropout_prob": 0.1, "drop_path": 0.0,
        "enable_flash_attn": False, "enable_layernorm_kernel": False, "freeze": None, "input_size": [None] * 3,
        "mlp_ratio": 4.0, "no_temporal_pos_emb": False, "pred_sigma": True, "torch_dtype": "float32",
        "transformers_version": "4.36.2", **kwargs}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, hub / "model.safetensors",
              metadata={"format": "pt"})
    write_sd_vae(tmp_path / "sd-vae-ft-ema")
    write_t5(tmp_path / "t5-v1_1-xxl")
    run_page("opensora-1.1.md", tmp_path, monkeypatch)
    assert frames_of("waterfall.mp4") == (16, 240, 424, 3)  # 240p 9:16 = 240x426 on the VAE's 8-pixel grid
    assert frames_of("first-frame.png") == (1, 240, 424, 3)
    assert frames_of("from-image.mp4") == (16, 240, 424, 3)  # image-to-video
    assert frames_of("continued.mp4") == (16, 240, 424, 3)  # extension
    converted = json.loads(Path("stdit2-stage3/config.json").read_text())  # computes as released by default
    assert converted["final_layer_legacy"] and converted["no_temporal_pos_emb_legacy"] and converted["qk_norm_legacy"]


def test_opensora_plan_1_0(tmp_path, monkeypatch):
    from kinema.dit.latte import LatteT2V

    torch.manual_seed(0)
    kwargs = dict(sample_size=32, patch_size=2, in_channels=4, out_channels=8, num_layers=1, num_attention_heads=2,
                  attention_head_dim=8, caption_channels=T5_WIDTH, video_length=5)
    model = LatteT2V(**kwargs)
    folder = tmp_path / "Open-Sora-Plan-v1.0.0" / "17x256x256"  # diffusers-based LatteT2V, Transformer2D-era fields
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "_class_name": "LatteT2V", "_diffusers_version": "0.24.0", "activation_fn": "gelu-approximate",
        "attention_bias": True, "attention_mode": "xformers", "attention_type": "default", "cross_attention_dim": 16,
        "double_self_attention": False, "dropout": 0.0, "norm_elementwise_affine": False, "norm_eps": 1e-06,
        "norm_num_groups": 32, "norm_type": "ada_norm_single", "num_embeds_ada_norm": 1000,
        "num_vector_embeds": None, "only_cross_attention": False, "patch_size_t": 1, "upcast_attention": False,
        "use_linear_projection": False, **kwargs}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              folder / "diffusion_pytorch_model.safetensors")
    write_causal_vae_release(tmp_path / "Open-Sora-Plan-v1.0.0" / "vae")
    write_t5(tmp_path / "t5-v1_1-xxl")
    run_page("opensora-plan-1.0.md", tmp_path, monkeypatch)
    assert frames_of("waterfall.mp4") == (17, 256, 256, 3)
    index = json.loads(Path("opensora-plan-1.0-17x256x256/model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"] and index["defaults"]["guidance_scale"] == 7.5


@pytest.mark.parametrize("page", ["opensora-1.0.md", "opensora-1.1.md", "opensora-plan-1.0.md"])
def test_each_page_downloads_what_it_converts(page):
    """The download lines and the kinema lines of a page name the same folders."""
    text = (DOCS / page).read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    downloads = [shlex.split(line) for line in text.splitlines() if line.startswith("huggingface-cli")]
    targets = {d[d.index("--local-dir") + 1] for d in downloads}
    assert targets and all(t == "." or t in text.replace(f"--local-dir {t}", "") for t in targets)
