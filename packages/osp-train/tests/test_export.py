import torch
from tiny import tiny_config

from osp.sample.pipeline_folder import load_component, read_index
from osp.train.export import export_pipeline
from osp.train.trainer import Trainer


def test_export_writes_ema_weights_into_a_pipeline_folder(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "STDiT2", optim={"ema_decay": 0.5, "max_steps": 3}))
    trainer.train()
    out = export_pipeline(tmp_path / "run" / "step-000000003", tmp_path / "pipe")
    index = read_index(out)
    assert index["transformer"] == ["osp.dit.stdit2", "STDiT2"] and index["scheduler"][1] == "IDDPMScheduler"
    model = load_component(out, "transformer", *index["transformer"])
    ema = trainer.dense_ema()
    params = dict(model.named_parameters())
    assert set(ema) <= set(params)
    for name in ema:
        p = params[name]
        torch.testing.assert_close(p, ema[name], rtol=0, atol=0)
    assert not torch.equal(ema["final_layer.linear.weight"], trainer.model.final_layer.linear.weight)
