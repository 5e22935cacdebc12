"""Apply parallelism to a single-device model from outside (torchtitan's ``parallelize`` style).

- tensor parallel (``ctx.tp_group``): megatron Column/RowParallelLinear in attention and MLP;
- sequence parallel (``ctx.cp_group``): frame-sharded tokens, all-to-all around temporal attention;
- data parallel (``ctx.dp_cp_group``): DDP averages the gradients, overlapping backward; or FSDP2
  (``fsdp.py``) shards weights, gradients and optimizer states over the same ranks.

Why the average runs over data x context ranks: with sequence parallelism every context rank
computes the same loss from the gathered output, and the gather's backward sums the full gradient
over the group, so each rank holds ``cp`` times its share; averaging over ``dp * cp`` ranks yields
the gradient of the mean loss over the global batch (megatron's convention).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel

from kinema.core import KinemaError

from .distributed import ParallelContext
from .sequence_parallel import apply_sequence_parallel
from .tensor_parallel import apply_tensor_parallel, has_partial_grad, is_tensor_parallel


def parallelize(model: nn.Module, ctx: ParallelContext) -> nn.Module:
    """Shard ``model`` in place for ``ctx``; call it after loading dense weights, before the optimizer."""
    if ctx.tp_size > 1:
        apply_tensor_parallel(model, ctx.tp_group)
    if ctx.cp_size > 1:
        apply_sequence_parallel(model, ctx.cp_group)
    return model


def data_parallel(model: nn.Module, ctx: ParallelContext, mode: str = "ddp", bf16_params: bool = False) -> nn.Module:
    """The module to run forward/backward through. ``ddp``: ``model`` itself on one data x context rank,
    else DistributedDataParallel over those ranks, whose bucketed all-reduce averages the gradients while
    backward is still running; ``model`` stays the plain module (state dicts, EMA, names). ``fsdp``:
    ``model`` sharded in place with FSDP2 (on any number of ranks, one included), and returned."""
    if mode == "fsdp":
        from .fsdp import apply_fsdp

        return apply_fsdp(model, ctx, bf16_params)
    if mode != "ddp":
        raise KinemaError(f"parallel.data={mode!r} is not supported; use ddp or fsdp")
    if not ctx.distributed or dist.get_world_size(ctx.dp_cp_group) == 1:
        return model
    return DistributedDataParallel(
        model, process_group=ctx.dp_cp_group, broadcast_buffers=False,  # every rank builds the same buffers
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
    )


def sync_gradients(params: list[nn.Parameter], ctx: ParallelContext) -> None:
    """Sum the partial gradients of TP-replicated QK-norms over the TP group (the data-parallel average
    is done by DDP during backward)."""
    if ctx.tp_size > 1:
        partial = [p.grad for p in params if p.grad is not None and has_partial_grad(p)]
        if partial:
            _all_reduce_bucket(partial, ctx.tp_group, divide_by=1)


def _all_reduce_bucket(grads: list[torch.Tensor], group, divide_by: int) -> None:
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat, group=group)
    if divide_by != 1:
        flat /= divide_by
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


def grad_norm(params: list[nn.Parameter], ctx: ParallelContext) -> torch.Tensor:
    """Global L2 norm of the (synced) gradients: TP shards summed over the TP group, FSDP2 shards over
    the data x context group, replicated parameters counted once."""
    from .fsdp import is_fsdp_sharded, local

    grads = [p for p in params if p.grad is not None]
    fsdp = [local(p.grad).detach().float() for p in grads if is_fsdp_sharded(p.grad)]
    sharded = [p.grad.detach().float() for p in grads if is_tensor_parallel(p) and not is_fsdp_sharded(p.grad)]
    replicated = [p.grad.detach().float() for p in grads if not is_tensor_parallel(p) and not is_fsdp_sharded(p.grad)]
    zero = torch.zeros((), device=ctx.device)
    sq_sharded = sum((g.pow(2).sum() for g in sharded), zero)
    if sharded and ctx.tp_size > 1:
        dist.all_reduce(sq_sharded, group=ctx.tp_group)
    sq_fsdp = sum((g.pow(2).sum() for g in fsdp), zero)
    if fsdp and ctx.dp_cp_group is not None:
        dist.all_reduce(sq_fsdp, group=ctx.dp_cp_group)
    sq_replicated = sum((g.pow(2).sum() for g in replicated), zero)
    return (sq_sharded + sq_fsdp + sq_replicated).sqrt()


def clip_gradients(params: list[nn.Parameter], max_norm: float, ctx: ParallelContext) -> torch.Tensor:
    """Scale gradients so their global norm is at most ``max_norm`` (0 = measure only); returns the norm."""
    norm = grad_norm(params, ctx)
    if max_norm > 0 and math.isfinite(norm.item()):
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        from .fsdp import local

        for p in params:
            if p.grad is not None:
                local(p.grad).mul_(coef.to(p.grad.dtype))
    return norm
