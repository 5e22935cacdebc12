"""Conditioning embedders: diffusion timestep, scalar sizes (STDiT2) and T5 captions.

Module and parameter names (``mlp.0``, ``mlp.2``, ``y_proj.fc1``, ``y_embedding``) are those of
the upstream checkpoints.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from kinema.core import KinemaError

from .layers import Mlp

FREQUENCY_DIM = 256


def timestep_embedding(t: torch.Tensor, dim: int = FREQUENCY_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """[N, dim] sinusoid of the scalars t, **cos first** (unlike the sin-first position tables), in fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Timestep t [B] -> [B, hidden]: fp32 sinusoid, then Linear-SiLU-Linear."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = FREQUENCY_DIM):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(t_freq.to(self.mlp[0].weight.dtype))


class SizeEmbedder(TimestepEmbedder):
    """Scalar conditions (pixel height/width, aspect ratio, frames, fps) embedded like timesteps.

    Input [B] or [B, d] (a single row is repeated to the batch); output [B, d * hidden].
    """

    def forward(self, s: torch.Tensor, batch_size: int) -> torch.Tensor:
        if s.ndim == 1:
            s = s[:, None]
        if s.shape[0] != batch_size:
            if batch_size % s.shape[0]:
                raise KinemaError(
                    f"size condition has {s.shape[0]} rows for a batch of {batch_size}; pass one value per sample"
                )
            s = s.repeat(batch_size // s.shape[0], 1)
        b, d = s.shape
        emb = super().forward(s.reshape(b * d))
        return emb.reshape(b, d * emb.shape[-1])


class CaptionEmbedder(nn.Module):
    """T5 caption features [B, 1, L, caption_channels] -> [B, 1, L, hidden].

    ``y_embedding`` [L, caption_channels] is a buffer (never trained): the "null caption" that
    replaces a whole caption with probability ``uncond_prob`` during training (classifier-free
    guidance dropout) and serves as the unconditional input at sampling time.
    """

    def __init__(self, in_channels: int, hidden_size: int, uncond_prob: float, token_num: int = 120):
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size, act=nn.GELU(approximate="tanh"))
        self.register_buffer("y_embedding", torch.randn(token_num, in_channels) / in_channels**0.5)
        self.uncond_prob = uncond_prob

    def token_drop(self, caption: torch.Tensor, force_drop_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        if caption.shape[2:] != self.y_embedding.shape:
            tokens = self.y_embedding.shape[0]
            raise KinemaError(
                f"caption features are {tuple(caption.shape[2:])} but the null caption is "
                f"{tuple(self.y_embedding.shape)}; pad/truncate captions to model_max_length={tokens}"
            )
        if force_drop_ids is None:
            drop = torch.rand(caption.shape[0], device=caption.device) < self.uncond_prob
        else:
            drop = force_drop_ids.to(caption.device) == 1
        return torch.where(drop[:, None, None, None], self.y_embedding.to(caption.dtype), caption)

    def forward(
        self, caption: torch.Tensor, train: bool, force_drop_ids: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        if (train and self.uncond_prob > 0) or force_drop_ids is not None:
            caption = self.token_drop(caption, force_drop_ids)
        return self.y_proj(caption)
