"""Process groups: megatron-core's ``parallel_state`` builds the tensor / context / data groups.

Rank layout (megatron's order ``tp-cp-ep-dp-pp``): tensor-parallel ranks are adjacent, then
context (sequence) parallel, then data parallel. A single process without ``torchrun`` gets a
trivial context and never touches torch.distributed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from kinema.core import KinemaError


def _import_parallel_state():
    with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed": expected on CPU
        warnings.simplefilter("ignore")
        from megatron.core import parallel_state
    return parallel_state


@dataclass
class ParallelContext:
    """Sizes, ranks and groups of one process. Groups are None when their size is 1."""

    world_size: int = 1
    rank: int = 0
    tp_size: int = 1
    tp_rank: int = 0
    tp_group: Any = None
    cp_size: int = 1
    cp_rank: int = 0
    cp_group: Any = None
    dp_size: int = 1
    dp_rank: int = 0
    dp_group: Any = None
    dp_cp_group: Any = None  # gradients are averaged over data x context parallel ranks
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init_parallel(tensor_parallel: int = 1, sequence_parallel: int = 1, backend: Optional[str] = None,
                  device: Optional[str] = None) -> ParallelContext:
    """Join the torchrun job (if any) and build the groups; world = tp * sp * dp."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        if tensor_parallel * sequence_parallel != 1:
            raise KinemaError(
                f"parallel.tensor={tensor_parallel} and parallel.sequence={sequence_parallel} need that many "
                "processes; launch with torchrun --nproc_per_node N -m kinema.train CONFIG"
            )
        return ParallelContext(device=torch.device(device))

    world = int(os.environ["WORLD_SIZE"])
    if world % (tensor_parallel * sequence_parallel):
        raise KinemaError(
            f"world size {world} is not a multiple of parallel.tensor * parallel.sequence = "
            f"{tensor_parallel} * {sequence_parallel}"
        )
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device == "cuda" else "gloo"))
    ps = _import_parallel_state()
    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    ps.initialize_model_parallel(tensor_model_parallel_size=tensor_parallel, context_parallel_size=sequence_parallel)
    dev = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
    return ParallelContext(
        world_size=world,
        rank=dist.get_rank(),
        tp_size=tensor_parallel,
        tp_rank=ps.get_tensor_model_parallel_rank(),
        tp_group=ps.get_tensor_model_parallel_group() if tensor_parallel > 1 else None,
        cp_size=sequence_parallel,
        cp_rank=ps.get_context_parallel_rank(),
        cp_group=ps.get_context_parallel_group() if sequence_parallel > 1 else None,
        dp_size=ps.get_data_parallel_world_size(),
        dp_rank=ps.get_data_parallel_rank(),
        dp_group=ps.get_data_parallel_group(),
        dp_cp_group=ps.get_data_parallel_group(with_context_parallel=True),
        device=dev,
    )


def shutdown_parallel(ctx: ParallelContext) -> None:
    if not ctx.distributed:
        return
    ps = _import_parallel_state()
    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()
