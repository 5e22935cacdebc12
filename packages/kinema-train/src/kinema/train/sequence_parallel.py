"""Sequence parallelism for the spatial-temporal models (STDiT, STDiT2) over the context-parallel group.

Tokens [B, T, S, C] are sharded by frames: rank r holds frames [r*T/n, (r+1)*T/n). Everything in
a block is then local except temporal attention, which sees the sequences [B*S, T/n, C]; an
all-to-all re-shards them to [B*S/n, T, C] (whole sequences, a slice of the batch of sequences),
attention runs unchanged, and the inverse all-to-all restores the frame shards. Spatial attention,
cross-attention and the MLP are per frame or per token and need no communication. The result is
exactly the single-device computation (unlike a spatial Ulysses split, nothing is approximated).

Applied from outside the model: every block's ``attn_temp`` becomes a ``SequenceParallelAttention``
(same parameters, so the same state-dict keys), and hooks split the first block's tokens by frames,
slice the fields that every block's ``BlockInputs`` declares per frame (``x_mask``, STDiT's temporal
table ``tpe``) to the local frames and all-gather the last block's output.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from kinema.core import AttentionBackend, KinemaError, get_registry
from kinema.dit.layers import Attention
from kinema.dit.pixart import PixArtFamily

from .comm import all_to_all, gather, local_chunk


def apply_sequence_parallel(model: nn.Module, cp_group) -> nn.Module:
    # the PixArt-family block layout (``blocks[i].attn_temp`` fed ``(x, BlockInputs)``) with attention along frames
    if not (isinstance(model, PixArtFamily) and model.contract().temporal_attention):
        raise ValueError(
            "sequence parallelism supports the spatial-temporal models (STDiT, STDiT2); "
            f"{type(model).__name__} has no blocks with temporal attention"
        )
    blocks = model.blocks
    temporal = [SequenceParallelAttention.from_dense(block.attn_temp, cp_group) for block in blocks]  # may refuse
    for i, (block, attn_temp) in enumerate(zip(blocks, temporal)):
        block.register_forward_pre_hook(_FrameShardHook(cp_group, split_x=i == 0))
        block.attn_temp = attn_temp
    blocks[-1].register_forward_hook(lambda module, args, out: gather(out, cp_group, dim=1))
    model.sequence_parallel_group = cp_group
    return model


class _FrameShardHook:
    """Runs before ``block(x [B, T, S, C], inputs)``: splits x by frames (the first block; the others
    receive it split) and slices the fields ``inputs`` (a ``kinema.dit.layers.BlockInputs``) declares
    per frame to this rank's frames."""

    def __init__(self, group, split_x: bool):
        self.group, self.split_x = group, split_x

    def __call__(self, module, args):
        x, inputs = args
        world = dist.get_world_size(self.group)
        frames = x.shape[1] * (1 if self.split_x else world)
        if frames % world:
            raise ValueError(
                f"sequence parallelism over {world} ranks needs the latent frame count ({frames}) to be a multiple "
                f"of {world}; change parallel.sequence or the number of frames"
            )

        def local_frames(value: torch.Tensor, axis: int) -> torch.Tensor:
            if value.shape[axis] != frames:
                raise ValueError(f"a per-frame block input has {value.shape[axis]} frames (axis {axis}) for "
                                 f"{frames} frames of tokens")
            return local_chunk(value, self.group, dim=axis)

        x = local_chunk(x, self.group, dim=1) if self.split_x else x
        return x, inputs.map_frames(local_frames)


class SequenceParallelAttention(Attention):
    """Temporal attention over frame-sharded sequences x [N, T/n, C]: an all-to-all re-shards them to
    [N/n, T, C] (whole sequences), the dense attention runs, and the inverse all-to-all restores the
    frame shards. Its backend must support context parallelism."""

    @classmethod
    def from_dense(cls, dense: Attention, group) -> "SequenceParallelAttention":
        """Takes over ``dense`` (use this module in its place): its submodules, parameters and settings
        under the same names, so the state-dict keys do not change."""
        require_context_parallel(dense.backend, dense.backend_impl)
        module = cls.__new__(cls)
        module.__dict__.update(dense.__dict__)
        module.group = group
        return module

    def check_backend(self, name: str, impl: AttentionBackend) -> None:
        super().check_backend(name, impl)
        require_context_parallel(name, impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pad = -n % dist.get_world_size(self.group)
        if pad:  # the batch of sequences must split evenly; padded sequences are dropped after
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
        x = all_to_all(x, self.group, scatter_dim=0, gather_dim=1)
        x = super().forward(x)
        return all_to_all(x, self.group, scatter_dim=1, gather_dim=0)[:n]


def require_context_parallel(name: str, impl: AttentionBackend) -> None:
    if not impl.supports_context_parallel:
        raise KinemaError(
            f"attention backend {name!r} does not support context parallelism, which sequence parallelism needs; "
            f"use one that does ({', '.join(_context_parallel_backends())}) or set parallel.sequence: 1"
        )


def _context_parallel_backends() -> list[str]:
    names = []
    for entry in get_registry("attention_backend").entries():
        try:
            if entry.obj.supports_context_parallel:
                names.append(entry.name)
        except KinemaError:  # a backend that cannot load is no option
            continue
    return names
