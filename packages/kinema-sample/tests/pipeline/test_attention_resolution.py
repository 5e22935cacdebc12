"""A whole sample resolves each attention module's backend once, when the transformer is built from
the folder, and never while denoising (the models keep the resolved backend; see kinema.dit.attention)."""

import torch
from kinema.core import get_registry
from kinema.dit.layers import Attention, MultiHeadCrossAttention

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.testing import make_tiny_pipeline


def test_thirty_step_sample_resolves_each_attention_module_once(tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    make_tiny_pipeline(folder)

    # ``entry`` is what ``get`` (and so every name lookup) goes through
    registry = get_registry("attention_backend")
    lookups = []
    entry = registry.entry
    monkeypatch.setattr(registry, "entry", lambda name: lookups.append(name) or entry(name))

    pipe = KinemaVideoPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    at_load = len(lookups)
    modules = [m for m in pipe.transformer.modules() if isinstance(m, (Attention, MultiHeadCrossAttention))]
    forwards = []
    pipe.transformer.register_forward_hook(lambda *args: forwards.append(1))

    out = pipe("a red car", num_inference_steps=30, num_frames=4, height=32, width=32, output_type="latent")

    assert len(forwards) >= 30  # the transformer really ran every step
    assert torch.isfinite(out.frames).all()
    assert len(modules) == 3 * len(pipe.transformer.blocks)  # spatial, cross and temporal attention per block
    assert at_load == len(modules) and set(lookups) == {pipe.transformer.config.attention}
    assert len(lookups) == at_load  # none during the call
