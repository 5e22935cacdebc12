"""FSDP2 data parallelism (``fully_shard``), applied from outside as torchtitan does.

Each transformer block and then the root are sharded over the data x context ranks: weights,
gradients and AdamW states live as ``DTensor`` shards (dim 0), a block's weights are all-gathered
just before it runs and its gradients reduce-scattered as soon as its backward ends, overlapping
the next block's compute. With ``bf16_params`` the gathered weights are cast to bf16 for compute
while the shards (the master weights AdamW updates) stay fp32 and gradients are reduced in fp32
(FSDP2's ``MixedPrecisionPolicy``): no autocast, no fp32 weight copies cast per matmul.

Checkpoints stay dense (``full``/``shard_like`` convert), so a run resumes on any process count and
``kinema train-export`` reads them as any other.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from kinema.dit.compile import transformer_blocks

from .distributed import ParallelContext


def _fsdp_group(ctx: ParallelContext):
    """The data x context group; on one process, a one-rank group FSDP2 can run on (created once)."""
    if ctx.dp_cp_group is not None:
        return ctx.dp_cp_group
    if not dist.is_initialized():
        backend = "nccl" if ctx.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return dist.group.WORLD


def apply_fsdp(model: nn.Module, ctx: ParallelContext, bf16_params: bool) -> nn.Module:
    """Shard ``model`` in place: every transformer block, then the root (embedders, final layer)."""
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # the models return their output through a reshape (a view); FSDP2 warns in case a caller modifies it in
    # place, which the training objectives and the pipeline never do
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = DeviceMesh.from_group(_fsdp_group(ctx), ctx.device.type)
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16_params else None, reduce_dtype=torch.float32)
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (collective over its mesh); a plain tensor as it is."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def shard_like(reference: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``dense`` laid out as ``reference`` (this rank's shard of a DTensor parameter, or ``dense`` itself)."""
    if not isinstance(reference, DTensor):
        return dense
    return distribute_tensor(dense.to(reference.device_mesh.device_type), reference.device_mesh, reference.placements)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a DTensor (a view: in-place changes reach the DTensor); a plain tensor as it is."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def is_fsdp_sharded(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, DTensor)
