"""Sequence parallelism for the spatial-temporal models (STDiT, STDiT2) over the context-parallel group.

Tokens [B, T, S, C] are sharded by frames: rank r holds frames [r*T/n, (r+1)*T/n). Everything in
a block is then local except temporal attention, which sees the sequences [B*S, T/n, C]; an
all-to-all re-shards them to [B*S/n, T, C] (whole sequences, a slice of the batch of sequences),
attention runs unchanged, and the inverse all-to-all restores the frame shards. Spatial attention,
cross-attention and the MLP are per frame or per token and need no communication. The result is
exactly the single-device computation (unlike a spatial Ulysses split, nothing is approximated).

Applied with hooks from outside the model: the first block's input is split by frames, every
block's per-frame arguments (``x_mask``, STDiT's temporal table ``tpe``) are sliced to the local
frames, and the last block's output is all-gathered.
"""

from __future__ import annotations

import inspect

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .comm import all_to_all, gather, local_chunk

# block arguments that carry a frame axis at dim 1 and must follow the frame sharding
PER_FRAME_ARGS = ("x_mask", "tpe")


def apply_sequence_parallel(model: nn.Module, cp_group) -> nn.Module:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not all(hasattr(b, "attn_temp") for b in blocks):
        raise ValueError(
            "sequence parallelism supports the spatial-temporal models (STDiT, STDiT2); "
            f"{type(model).__name__} has no blocks with temporal attention"
        )
    for i, block in enumerate(blocks):
        signature = inspect.signature(block.forward)
        block.register_forward_pre_hook(_FrameShardHook(signature, cp_group, split_x=i == 0), with_kwargs=True)
        _wrap_temporal_attention(block.attn_temp, cp_group)
    blocks[-1].register_forward_hook(lambda module, args, out: gather(out, cp_group, dim=1))
    model.sequence_parallel_group = cp_group
    return model


class _FrameShardHook:
    def __init__(self, signature: inspect.Signature, group, split_x: bool):
        self.signature, self.group, self.split_x = signature, group, split_x

    def __call__(self, module, args, kwargs):
        bound = self.signature.bind(*args, **kwargs)
        x = bound.arguments["x"]
        world = dist.get_world_size(self.group)
        frames = x.shape[1] * (1 if self.split_x else world)
        if frames % world:
            raise ValueError(
                f"sequence parallelism over {world} ranks needs the latent frame count ({frames}) to be a multiple "
                f"of {world}; change parallel.sequence or the number of frames"
            )
        if self.split_x:
            bound.arguments["x"] = local_chunk(x, self.group, dim=1)
        for name in PER_FRAME_ARGS:
            value = bound.arguments.get(name)
            if isinstance(value, torch.Tensor) and value.shape[1] == frames:
                bound.arguments[name] = local_chunk(value, self.group, dim=1)
        return bound.args, bound.kwargs


def _wrap_temporal_attention(attn: nn.Module, group) -> None:
    """attn(x [N, T/n, C]) -> all-to-all -> attn([N/n, T, C]) -> all-to-all back."""
    inner = attn.forward
    world = dist.get_world_size(group)

    def forward(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pad = -n % world
        if pad:  # the batch of sequences must split evenly; padded sequences are dropped after
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
        x = all_to_all(x, group, scatter_dim=0, gather_dim=1)
        x = inner(x)
        x = all_to_all(x, group, scatter_dim=1, gather_dim=0)
        return x[:n]

    attn.forward = forward
