import pytest
from tiny import tiny_config

from kinema.core import KinemaError
from kinema.train.config import load_config
from kinema.train.lr_schedule import lr_factor
from kinema.train.trainer import Trainer


def test_warmup_stable_decay_by_hand():
    # 10 steps: warm-up over 2, constant, linear decay over the last 4 to 0.1
    factors = [lr_factor(s, warmup_steps=2, max_steps=10, decay_steps=4, min_lr_factor=0.1) for s in range(10)]
    assert factors == pytest.approx([0.5, 1, 1, 1, 1, 1, 0.775, 0.55, 0.325, 0.1])
    assert [lr_factor(s, 0, 10) for s in range(10)] == [1.0] * 10  # upstream: constant


def test_trainer_follows_the_schedule_and_a_resume_can_move_the_decay(tmp_path):
    optim = {"lr": 1e-3, "warmup_steps": 0, "max_steps": 6, "decay_steps": 3, "min_lr_factor": 0.0}
    trainer = Trainer(tiny_config(tmp_path / "a", "STDiT2", optim=optim))
    trainer.train()
    lrs = [float(row.split(",")[3]) for row in (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1:]]
    # the logged lr is the one the step used
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 0, 6, 3) for s in range(6)])
    # resumed from step 3 with a longer run: the decay moves to the new end
    longer = tiny_config(tmp_path / "a", "STDiT2", optim={**optim, "max_steps": 9},
                         checkpoint={"resume": str(tmp_path / "a" / "step-000000003"), "dir": str(tmp_path / "b")})
    resumed = Trainer(longer)
    resumed.train()
    lrs = [float(row.split(",")[3]) for row in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 0, 9, 3) for s in range(3, 9)])


def test_decay_longer_than_the_run_is_an_error(tmp_path):
    with pytest.raises(KinemaError, match="optim.decay_steps=20 must be in"):
        load_config(None, ["optim.max_steps=10", "optim.decay_steps=20"])
