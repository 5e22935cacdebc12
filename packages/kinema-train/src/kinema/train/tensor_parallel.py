"""Tensor parallelism for the PixArt-family blocks with megatron-core's Column/RowParallelLinear.

Attention: ``qkv`` (and the cross-attention's ``q_linear`` / ``kv_linear``) are column-parallel
with whole heads per rank, ``proj`` is row-parallel (megatron all-reduces its output). MLP:
``fc1`` column-parallel, ``fc2`` row-parallel. Each rank starts from a slice of the dense weights,
so a sharded model computes exactly what the dense one does; ``to_dense`` gathers them back
(checkpoints and exports always hold the dense, upstream-named layout).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn

from kinema.dit.layers import Attention, Mlp, MultiHeadCrossAttention
from kinema.dit.pixart import PixArtFamily

with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed": expected on CPU
    warnings.simplefilter("ignore")
    from megatron.core.model_parallel_config import ModelParallelConfig
    from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear


def megatron_config(tp_size: int, dtype: torch.dtype = torch.float32) -> ModelParallelConfig:
    # CPU-initialised, unfused layers: run on gloo as on NCCL; weights are copied in from the dense model.
    return ModelParallelConfig(
        tensor_model_parallel_size=tp_size,
        use_cpu_initialization=True,
        perform_initialization=False,
        params_dtype=dtype,
        sequence_parallel=False,
        gradient_accumulation_fusion=False,
    )


# ---------------------------------------------------------------------------------------------
# linears that return a tensor (megatron's return (output, bias)) and know their dense layout
# ---------------------------------------------------------------------------------------------


class ColumnLinear(ColumnParallelLinear):
    """Output features split over the TP ranks. ``groups`` > 1 means the dense output is ``groups``
    stacked blocks (q/k/v) and each rank takes its slice of every block, so heads stay whole."""

    # no "_extra_state" entry (megatron's is None, for Transformer Engine): the keys stay nn.Linear's
    get_extra_state = nn.Module.get_extra_state

    def forward(self, x):
        return _as_tokens(super().forward, x)

    @classmethod
    def from_dense(cls, linear: nn.Linear, tp_group, groups: int = 1) -> "ColumnLinear":
        tp, rank = dist.get_world_size(tp_group), dist.get_rank(tp_group)
        out_features, in_features = linear.weight.shape
        layer = cls(in_features, out_features, config=megatron_config(tp, linear.weight.dtype),
                    init_method=nn.init.zeros_, bias=linear.bias is not None, gather_output=False)
        layer.groups, layer.tp_group = groups, tp_group
        with torch.no_grad():
            layer.weight.copy_(_take_rows(linear.weight, groups, tp, rank))
            if linear.bias is not None:
                layer.bias.copy_(_take_rows(linear.bias, groups, tp, rank))
        return layer.to(linear.weight.device)

    def gather_dense(self, key: str, local: torch.Tensor) -> torch.Tensor:
        return _gather_rows(local, self.groups, self.tp_group)


class RowLinear(RowParallelLinear):
    """Input features split over the TP ranks; the output is all-reduced, then the (full) bias added."""

    get_extra_state = nn.Module.get_extra_state  # as ColumnLinear

    def forward(self, x):
        return _as_tokens(super().forward, x)

    @classmethod
    def from_dense(cls, linear: nn.Linear, tp_group) -> "RowLinear":
        tp, rank = dist.get_world_size(tp_group), dist.get_rank(tp_group)
        out_features, in_features = linear.weight.shape
        layer = cls(in_features, out_features, config=megatron_config(tp, linear.weight.dtype),
                    init_method=nn.init.zeros_, bias=linear.bias is not None, input_is_parallel=True,
                    skip_bias_add=False)
        layer.tp_group = tp_group
        with torch.no_grad():
            layer.weight.copy_(linear.weight.chunk(tp, dim=1)[rank])
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer.to(linear.weight.device)

    def gather_dense(self, key: str, local: torch.Tensor) -> torch.Tensor:
        if key == "bias":  # replicated
            return local.detach().clone()
        tp = dist.get_world_size(self.tp_group)
        parts = [torch.empty_like(local) for _ in range(tp)]
        dist.all_gather(parts, local.detach().contiguous(), group=self.tp_group)
        return torch.cat(parts, dim=1)


def _as_tokens(megatron_forward, x: torch.Tensor) -> torch.Tensor:
    # megatron's backward assumes [sequence, batch, features]; any leading shape is flattened to that
    out = megatron_forward(x.reshape(-1, 1, x.shape[-1]))[0]
    return out.reshape(*x.shape[:-1], out.shape[-1])


def _take_rows(t: torch.Tensor, groups: int, tp: int, rank: int) -> torch.Tensor:
    blocks = t.reshape(groups, t.shape[0] // groups, *t.shape[1:])
    return blocks.chunk(tp, dim=1)[rank].reshape(-1, *t.shape[1:])


def _gather_rows(t: torch.Tensor, groups: int, tp_group) -> torch.Tensor:
    tp = dist.get_world_size(tp_group)
    parts = [torch.empty_like(t) for _ in range(tp)]
    dist.all_gather(parts, t.detach().contiguous(), group=tp_group)
    blocks = [p.reshape(groups, p.shape[0] // groups, *p.shape[1:]) for p in parts]
    return torch.cat(blocks, dim=1).reshape(-1, *t.shape[1:])


# ---------------------------------------------------------------------------------------------
# applying it: the linears are swapped inside the existing modules, whose forward reads the
# (local) head count from the tensor shapes
# ---------------------------------------------------------------------------------------------


def apply_tensor_parallel(model: nn.Module, tp_group) -> nn.Module:
    """Shard every attention and MLP inside ``model.blocks`` in place."""
    if not isinstance(model, PixArtFamily):
        raise ValueError(
            f"tensor parallelism supports the PixArt-family models (STDiT, STDiT2, DiT, PixArt); "
            f"{type(model).__name__} is not one"
        )
    blocks = model.blocks
    tp = dist.get_world_size(tp_group)
    children = [child for block in blocks for child in block.children()]
    for child in children:  # check every module before changing any
        if isinstance(child, (Attention, MultiHeadCrossAttention)) and child.num_heads % tp:
            raise ValueError(f"{child.num_heads} attention heads cannot be split over {tp} tensor-parallel ranks; "
                             f"choose a tensor-parallel size that divides {child.num_heads}")
    for child in children:
        if isinstance(child, Attention):
            child.qkv = ColumnLinear.from_dense(child.qkv, tp_group, groups=3)
            child.proj = RowLinear.from_dense(child.proj, tp_group)
            for p in [*child.q_norm.parameters(), *child.k_norm.parameters()]:
                p.tp_partial_grad = True  # per head_dim, replicated; each rank sees only its heads
        elif isinstance(child, MultiHeadCrossAttention):
            child.q_linear = ColumnLinear.from_dense(child.q_linear, tp_group)
            child.kv_linear = ColumnLinear.from_dense(child.kv_linear, tp_group, groups=2)
            child.proj = RowLinear.from_dense(child.proj, tp_group)
        elif isinstance(child, Mlp):
            child.fc1 = ColumnLinear.from_dense(child.fc1, tp_group)
            child.fc2 = RowLinear.from_dense(child.fc2, tp_group)
    return model


def has_partial_grad(param: nn.Parameter) -> bool:
    """True for a replicated parameter used only by this rank's heads (QK-norm weights): its
    gradient must be summed over the TP group."""
    return bool(getattr(param, "tp_partial_grad", False))


def is_tensor_parallel(param: nn.Parameter) -> bool:
    """True for a TP shard (megatron tags them); replicated parameters are False."""
    return bool(getattr(param, "tensor_model_parallel", False))


def to_dense(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-parameter tensors of this rank (weights, gradients, EMA) -> the dense layout, named as in
    the single-device model. Collective: every TP rank (and every FSDP rank) must call it."""
    from .fsdp import full

    dense = {k: full(v.detach()).clone() for k, v in tensors.items()}
    for name, module in model.named_modules():
        if isinstance(module, (ColumnLinear, RowLinear)):
            for key in ("weight", "bias"):
                full = f"{name}.{key}"
                if full in tensors:
                    dense[full] = module.gather_dense(key, tensors[full])
    return dense


def local_from_dense(model: nn.Module, dense: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of ``to_dense``: this rank's slices of dense per-parameter tensors (FSDP2 shards as
    DTensors laid out as their parameters)."""
    from .fsdp import shard_like

    params = dict(model.named_parameters())
    local = {k: shard_like(params[k], v) if k in params else v for k, v in dense.items()}
    for name, module in model.named_modules():
        if isinstance(module, ColumnLinear):
            tp, rank = dist.get_world_size(module.tp_group), dist.get_rank(module.tp_group)
            for key in ("weight", "bias"):
                if f"{name}.{key}" in dense:
                    local[f"{name}.{key}"] = _take_rows(dense[f"{name}.{key}"], module.groups, tp, rank)
        elif isinstance(module, RowLinear) and f"{name}.weight" in dense:
            tp, rank = dist.get_world_size(module.tp_group), dist.get_rank(module.tp_group)
            local[f"{name}.weight"] = dense[f"{name}.weight"].chunk(tp, dim=1)[rank]
    return local


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return to_dense(model, model.state_dict())
