"""Differentiable collectives for sequence parallelism (any backend: gloo on CPU, NCCL on GPU).

Conventions for a tensor sharded over a group of ``n`` ranks along ``dim``: rank ``r`` holds the
r-th of ``n`` equal chunks, in rank order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _all_to_all(x: torch.Tensor, group, scatter_dim: int, gather_dim: int) -> torch.Tensor:
    world = dist.get_world_size(group)
    send = torch.stack([c.contiguous() for c in x.chunk(world, dim=scatter_dim)])  # [world, ...]
    recv = torch.empty_like(send)
    dist.all_to_all_single(recv, send, group=group)
    return torch.cat(recv.unbind(0), dim=gather_dim)


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group, scatter_dim, gather_dim):
        ctx.group, ctx.scatter_dim, ctx.gather_dim = group, scatter_dim, gather_dim
        return _all_to_all(x, group, scatter_dim, gather_dim)

    @staticmethod
    def backward(ctx, grad):
        # the inverse re-shard: scatter what was gathered, gather what was scattered
        return _all_to_all(grad, ctx.group, ctx.gather_dim, ctx.scatter_dim), None, None, None


def all_to_all(x: torch.Tensor, group, scatter_dim: int, gather_dim: int) -> torch.Tensor:
    """Re-shard: split ``scatter_dim`` over the group, concatenate the pieces received along ``gather_dim``."""
    if dist.get_world_size(group) == 1:
        return x
    return _AllToAll.apply(x, group, scatter_dim, gather_dim)


class _GatherSumScatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group, dim):
        ctx.group, ctx.dim = group, dim
        world = dist.get_world_size(group)
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad):
        # Every rank computed the same loss from the gathered tensor, so each holds the full
        # gradient; summing and keeping the local chunk gives n x the true gradient of the shard,
        # which the mean over the data x context group divides back out (see parallelize.py).
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        rank = dist.get_rank(ctx.group)
        return grad.chunk(dist.get_world_size(ctx.group), dim=ctx.dim)[rank].contiguous(), None, None


def gather(x: torch.Tensor, group, dim: int) -> torch.Tensor:
    """All-gather shards along ``dim``; backward sums over the group and keeps the local chunk."""
    if dist.get_world_size(group) == 1:
        return x
    return _GatherSumScatter.apply(x, group, dim)


def local_chunk(x: torch.Tensor, group, dim: int) -> torch.Tensor:
    """This rank's chunk along ``dim`` (backward: zero elsewhere, i.e. plain slicing)."""
    world = dist.get_world_size(group)
    if world == 1:
        return x
    if x.shape[dim] % world:
        raise ValueError(f"cannot shard size {x.shape[dim]} (dim {dim}) over {world} ranks evenly")
    return x.chunk(world, dim=dim)[dist.get_rank(group)]
