"""DiT with full 3D attention: the comparison baseline for STDiT (``DiT-XL/2``).

Same PixArt-style block as STDiT (adaLN-single, cross-attention to T5 captions) but a single
self-attention over all T*S tokens of the clip, so attention cost grows with (T*S)^2 instead of
T*S^2 + S*T^2. Positions: the fixed 2D spatial sincos table plus the 1D temporal one, both added
once after patch embedding.

    x [B, C, T, H, W] --patch + 3D sincos--> [B, T, S, C] --N x PixArtBlock over T*S--> [B, 2C, T, H, W]
"""

from __future__ import annotations

from typing import Optional

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from kinema.core import KinemaError

from .contract import ModelContract, VideoModel
from .embeddings import CaptionEmbedder, TimestepEmbedder
from .layers import (
    AttentionBackendMixin,
    PatchEmbed3D,
    T2IFinalLayer,
    caption_mask,
    check_caption,
    check_frame_mask,
    init_pixart_weights,
    unpatchify,
)
from .pixart import PixArtBlock
from .pos_embed import get_1d_sincos_pos_embed, get_2d_sincos_pos_embed


class DiT(ModelMixin, ConfigMixin, AttentionBackendMixin, VideoModel):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L],
    x_mask [B, T]) -> [B, 2C, T, H, W] fp32; ``input_size`` (T, H, W) fixes the position tables."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        input_size: tuple = (16, 32, 32),
        in_channels: int = 4,
        patch_size: tuple = (1, 2, 2),
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        pred_sigma: bool = True,
        drop_path: float = 0.0,
        caption_channels: int = 4096,
        model_max_length: int = 120,
        space_scale: float = 1.0,
        time_scale: float = 1.0,
        attention: str = "sdpa",
    ):
        super().__init__()
        input_size, patch_size = tuple(input_size), tuple(patch_size)
        if any(n % p for n, p in zip(input_size, patch_size)):
            raise KinemaError(f"input_size {input_size} must be a multiple of patch_size {patch_size}")
        self.out_channels = in_channels * 2 if pred_sigma else in_channels
        self.grid = tuple(n // p for n, p in zip(input_size, patch_size))
        num_t, grid_h, grid_w = self.grid
        self.gradient_checkpointing = False

        self.x_embedder = PatchEmbed3D(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        pos = get_2d_sincos_pos_embed(hidden_size, (grid_h, grid_w), scale=space_scale)
        self.register_buffer("pos_embed", pos.unsqueeze(0))
        self.register_buffer("pos_embed_temporal", get_1d_sincos_pos_embed(hidden_size, num_t, time_scale)[None])
        drops = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            [PixArtBlock(hidden_size, num_heads, mlp_ratio, drops[i], backend=attention) for i in range(depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, patch_size[0] * patch_size[1] * patch_size[2], self.out_channels)
        init_pixart_weights(self)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(caption_channels=c.caption_channels, caption_length=c.model_max_length,
                             patch_size=tuple(c.patch_size), frame_mask=True, caption_dropout=True,
                             latent_size=tuple(c.input_size))

    def null_caption(self) -> torch.Tensor:
        return self.y_embedder.y_embedding

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        x_mask: Optional[torch.Tensor] = None,
        force_drop_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        cfg = self.config
        B = x.shape[0]
        if tuple(x.shape[2:]) != tuple(cfg.input_size):
            raise KinemaError(
                f"DiT was built for latents of (T, H, W) = {tuple(cfg.input_size)}, got {tuple(x.shape[2:])}"
            )
        check_caption(y, B, cfg.caption_channels)
        T, H, W = self.grid
        x_mask = check_frame_mask(x_mask, B, T)
        dtype = self.x_embedder.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)

        x = self.x_embedder(x).view(B, T, H * W, -1)
        x = x + self.pos_embed[:, None] + self.pos_embed_temporal[:, :, None]

        t = self.t_embedder(timestep)
        t_mod = self.t_block(t)
        t0 = t0_mod = None
        if x_mask is not None:
            t0 = self.t_embedder(torch.zeros_like(timestep))
            t0_mod = self.t_block(t0)

        y = self.y_embedder(y, self.training, force_drop_ids).squeeze(1)
        y_mask = caption_mask(mask, B, y.shape[1])

        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, y, y_mask, t_mod, x_mask, t0_mod)
            else:
                x = block(x, y, y_mask, t_mod, x_mask, t0_mod)

        x = self.final_layer(x, t, t0, x_mask)
        return unpatchify(x, self.grid, cfg.patch_size, self.out_channels).float()


def DiT_XL_2(**kwargs) -> DiT:
    return DiT(**{"depth": 28, "hidden_size": 1152, "patch_size": (1, 2, 2), "num_heads": 16, **kwargs})
