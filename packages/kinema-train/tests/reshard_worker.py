"""Run under torchrun (2 ranks, gloo): train from scratch on 2 processes (DDP, FSDP2), and resume 1-process
checkpoints on 2 processes (data parallel with ZeRO, tensor parallel, FSDP2). Rank 0 writes the losses to
OUT/<case>.json.

usage: reshard_worker.py OUT ONE_PROCESS_CHECKPOINT
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from tiny import tiny_config  # noqa: E402

from kinema.train.trainer import Trainer  # noqa: E402

EXTRA = {"mask_ratios": {"mask_no": 0.5, "mask_quarter_head": 0.5}}


def run(out: str, name: str, parallel: dict, optim: dict, resume=None) -> None:
    checkpoint = {"dir": os.path.join(out, name)} | ({"resume": resume} if resume else {})
    trainer = Trainer(tiny_config(out, "STDiT2", data=EXTRA, parallel=parallel, optim=optim, checkpoint=checkpoint))
    result = {"start": trainer.step, "losses": trainer.train(),
              "data_parallel": type(trainer.train_model).__name__}
    if trainer.ctx.is_main:
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, one_process = sys.argv[1], sys.argv[2]
    run(out, "two", {}, {})
    run(out, "one_to_two_zero", {}, {"shard_optimizer": True}, resume=one_process)
    run(out, "one_to_two_tp", {"tensor": 2}, {}, resume=one_process)
    run(out, "two_fsdp", {"data": "fsdp"}, {})
    run(out, "one_to_two_fsdp", {"data": "fsdp"}, {}, resume=one_process)
    torch.distributed.destroy_process_group()
