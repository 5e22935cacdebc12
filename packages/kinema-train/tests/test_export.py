import torch
from tiny import MODELS, tiny_config

from kinema.sample.pipeline import KinemaVideoPipeline
from kinema.sample.pipeline_folder import read_index
from kinema.train.export import export_pipeline
from kinema.train.trainer import Trainer


def test_export_writes_ema_weights_into_a_pipeline_folder(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "STDiT2", optim={"ema_decay": 0.5, "max_steps": 3}))
    trainer.train()
    out = export_pipeline(tmp_path / "run" / "step-000000003", tmp_path / "pipe")
    index = read_index(out)
    # IDDPM-trained: sampled by diffusers' DDPM with the learned-range variance
    assert index["transformer"] == ["kinema.dit.stdit2", "STDiT2"] and index["scheduler"][1] == "DDPMScheduler"
    assert index["prediction_type"] == "epsilon" and index["defaults"]["num_inference_steps"] == 100
    pipe = KinemaVideoPipeline.from_pretrained(out)
    assert pipe.scheduler.config.variance_type == "learned_range"
    model = pipe.transformer
    ema = trainer.dense_ema()
    params = dict(model.named_parameters())
    assert set(ema) <= set(params)
    for name in ema:
        p = params[name]
        torch.testing.assert_close(p, ema[name], rtol=0, atol=0)
    assert not torch.equal(ema["final_layer.linear.weight"], trainer.model.final_layer.linear.weight)


def test_export_can_name_the_text_encoder_and_set_sampling_defaults(tmp_path):
    import json

    from kinema.core import KinemaError

    Trainer(tiny_config(tmp_path / "run", "STDiT2", optim={"ema_decay": 0.5, "max_steps": 1})).train()
    out = export_pipeline(tmp_path / "run" / "step-000000001", tmp_path / "pipe", text_encoder_by_name=True,
                          defaults={"num_frames": 4, "height": 16, "width": 16, "fps": 8})
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"] == ["kinema.sample.text_encoders.registered", "RegisteredTextEncoder"]
    encoder_config = json.loads((out / "text_encoder" / "config.json").read_text())
    assert (encoder_config["name"], encoder_config["options"]) == ("tiny-t5", {"max_length": 16, "hidden_size": 32})
    assert not list((out / "text_encoder").glob("*.safetensors"))  # the weights stay in their own package
    assert index["tokenizer"] == [None, None]
    assert (index["defaults"]["num_frames"], index["defaults"]["height"]) == (4, 16)
    pipe = KinemaVideoPipeline.from_pretrained(out)
    assert pipe.text_encoder.max_length == 16
    try:
        export_pipeline(tmp_path / "run" / "step-000000001", tmp_path / "bad", defaults={"frames": 4})
    except KinemaError as exc:
        assert "unknown pipeline defaults ['frames']" in str(exc)
    else:
        raise AssertionError("an unknown default was accepted")


def test_export_ships_a_retrained_decoder_only_when_it_keeps_the_latents(tmp_path):
    """--vae: the transformer trained on one VAE's latents may ship with a decoder retrained on the same encoder
    (`kinema vae train --decoder-only`), never with a VAE whose latents differ."""
    import pytest

    from kinema.core import KinemaError
    from kinema.vae import CausalVideoVAE, tiny_config as tiny_vae_config
    from kinema.vae.loading import load_vae

    torch.manual_seed(0)
    vae = CausalVideoVAE.from_config(tiny_vae_config())
    vae.save_pretrained(tmp_path / "vae")
    with torch.no_grad():  # a new decoder, the same encoder
        for p in vae.decoder.parameters():
            p.add_(0.1)
    vae.save_pretrained(tmp_path / "new-decoder")
    with torch.no_grad():
        next(vae.encoder.parameters()).add_(0.1)
    vae.save_pretrained(tmp_path / "new-encoder")

    channels = vae.config.embed_dim
    model = {"kwargs": {**MODELS["STDiT2"]["kwargs"], "in_channels": channels}}
    cfg = tiny_config(tmp_path / "run", "STDiT2", model=model, optim={"ema_decay": 0.5, "max_steps": 1},
                      vae={"name": "causal-video-vae", "pretrained": str(tmp_path / "vae")},
                      data={"num_frames": 5})
    Trainer(cfg).train()
    step = tmp_path / "run" / "step-000000001"
    out = export_pipeline(step, tmp_path / "pipe", vae=tmp_path / "new-decoder")
    shipped, wanted = load_vae(out / "vae").state_dict(), load_vae(tmp_path / "new-decoder").state_dict()
    assert all(torch.equal(shipped[k], wanted[k]) for k in wanted)
    with pytest.raises(KinemaError, match="computes other latents than the VAE the checkpoint was trained with"):
        export_pipeline(step, tmp_path / "bad", vae=tmp_path / "new-encoder")
    assert not (tmp_path / "bad").exists()
