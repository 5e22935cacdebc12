import math

import pytest
import torch
from tiny import tiny_config

from kinema.train.trainer import NonFiniteLossError, Trainer


def test_loss_decreases_and_beats_untrained_on_held_out(tmp_path):
    cfg = tiny_config(tmp_path, "STDiT2", optim={"max_steps": 40, "lr": 2e-3, "ema_decay": 0.9},
                      checkpoint={"every": 100}, data={"num_samples": 32})
    trainer = Trainer(cfg)
    untrained = trainer.held_out_loss()
    losses = trainer.train()
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8
    trained = trainer.held_out_loss()
    assert trained < 0.8 * untrained
    assert trainer.held_out_loss(use_ema=True) < untrained
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == ["step", "loss", "grad_norm", "lr", "samples_per_s", "tokens_per_s"]
    assert len(rows) == 41 and float(rows[-1].split(",")[5]) > 0


@pytest.mark.parametrize("model", ["STDiT", "STDiT2"])
def test_resume_reproduces_the_uninterrupted_losses_exactly(tmp_path, model):
    extra = {"mask_ratios": {"mask_no": 0.5, "mask_quarter_head": 0.5}}
    full = Trainer(tiny_config(tmp_path / "full", model, data=extra))
    uninterrupted = full.train()  # 6 steps, checkpoints at 3 and 6

    resumed_cfg = tiny_config(tmp_path / "full", model, data=extra,
                              checkpoint={"resume": str(tmp_path / "full" / "step-000000003"),
                                          "dir": str(tmp_path / "resumed")})
    resumed = Trainer(resumed_cfg)
    assert resumed.step == 3
    assert resumed.train() == uninterrupted[3:]  # bit for bit


def test_nan_loss_is_reported_with_step_and_batch(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "STDiT"))
    trainer.train(max_steps=2)
    with torch.no_grad():
        trainer.model.final_layer.linear.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 2 .*epoch 0, batch 2; captions \['"):
        trainer.train(max_steps=4)


def test_gradient_checkpointing_gives_the_same_step(tmp_path):
    plain = Trainer(tiny_config(tmp_path / "a", "STDiT2"))
    checkpointed = Trainer(tiny_config(tmp_path / "b", "STDiT2", model={"gradient_checkpointing": True}))
    assert plain.train(max_steps=2) == pytest.approx(checkpointed.train(max_steps=2), abs=1e-6)


def test_tokens_per_second_counts_the_patches_of_the_vae_latents(tmp_path):
    """metrics.csv's tokens_per_s / samples_per_s is the transformer's token count per clip: the patches of the
    latents the VAE actually returns for the training clips (5 frames of 16x16 px)."""
    from kinema.vae import CausalVideoVAE, tiny_config as tiny_vae_config

    torch.manual_seed(0)
    vae = CausalVideoVAE.from_config(tiny_vae_config())
    vae.save_pretrained(tmp_path / "vae")
    model = {"kwargs": {**tiny_config(tmp_path).model.kwargs, "in_channels": vae.config.embed_dim}}
    cfg = tiny_config(tmp_path / "run", "STDiT2", model=model, optim={"max_steps": 2},
                      vae={"name": "causal-video-vae", "pretrained": str(tmp_path / "vae")}, data={"num_frames": 5})
    Trainer(cfg).train()
    with torch.no_grad():
        t, h, w = vae.encode_video(torch.zeros(1, 3, 5, 16, 16)).shape[2:]
    patches = t * math.ceil(h / 2) * math.ceil(w / 2)  # STDiT2's patch (1, 2, 2)
    header, *rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index
    for row in rows:
        values = row.split(",")
        samples, tokens = float(values[column("samples_per_s")]), float(values[column("tokens_per_s")])
        assert tokens / samples == pytest.approx(patches, rel=1e-6)
