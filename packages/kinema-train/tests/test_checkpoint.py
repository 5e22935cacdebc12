"""kill -9 in the middle of a checkpoint save leaves the previous checkpoint loadable."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from tiny import tiny_config

from kinema.train import checkpoint as ckpt
from kinema.train.trainer import Trainer

SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from tiny import tiny_config
    from kinema.train.trainer import Trainer
    trainer = Trainer(tiny_config({root!r}, "STDiT"))
    trainer.train(max_steps=3)                       # a complete checkpoint at step 3
    os.environ["KINEMA_TRAIN_SAVE_DELAY"] = "30"        # the next save sleeps after each file
    print("saving", flush=True)
    trainer.train(max_steps=6)
""")


def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path):
    script = SCRIPT.format(tests=os.path.dirname(__file__), root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    partial = tmp_path / ".tmp-step-000000006" / "model.safetensors"
    deadline = time.time() + 120
    while not partial.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert partial.exists(), "the save never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert not (tmp_path / "step-000000006").exists()
    assert (tmp_path / "latest").read_text() == "step-000000003"
    assert ckpt.resolve_checkpoint(tmp_path, "latest").name == "step-000000003"
    resumed = Trainer(tiny_config(tmp_path, "STDiT", checkpoint={"resume": "latest"}))
    assert resumed.step == 3
    assert len(resumed.train()) == 3  # and the next save clears the half-written folder
    assert not (tmp_path / ".tmp-step-000000006").exists()
    assert (tmp_path / "latest").read_text() == "step-000000006"
