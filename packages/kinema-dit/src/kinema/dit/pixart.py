"""PixArt-alpha-style text-to-image diffusion transformer (``PixArt-XL/2``).

The image model STDiT grows from: STDiT's blocks are these blocks plus a zero-initialised
temporal attention, and every parameter name here is the same in STDiT (only
``x_embedder.proj.weight`` differs, [1152, 4, 2, 2] here vs [1152, 4, 1, 2, 2]).

    x [B, C, H, W] --patch+pos--> tokens --N x PixArtBlock(t, caption)--> final layer --> [B, 2C, H, W]
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
    Attention,
    AttentionBackendMixin,
    DropPath,
    Mlp,
    MultiHeadCrossAttention,
    PatchEmbed2D,
    T2IFinalLayer,
    caption_mask,
    check_caption,
    frame_modulation,
    init_pixart_weights,
    layer_norm,
    t2i_modulate,
)
from .pos_embed import get_2d_sincos_pos_embed

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class PixArtBlock(nn.Module):
    """adaLN-single block: self-attention over all T*S tokens, cross-attention to the caption, MLP.

    x is [B, T, S, C]; with T = 1 this is PixArt's image block, with T > 1 it is full 3D attention (DiT).
    """

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, drop_path=0.0, backend="sdpa"):
        super().__init__()
        self.norm1 = layer_norm(hidden_size)
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True, backend=backend)
        self.cross_attn = MultiHeadCrossAttention(hidden_size, num_heads, backend=backend)
        self.norm2 = layer_norm(hidden_size)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), hidden_size)
        self.drop_path = DropPath(drop_path)
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)

    def forward(self, x, y, y_mask, t_mod, x_mask=None, t0_mod=None):
        B, T, S, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = frame_modulation(
            self.scale_shift_table, t_mod, t0_mod, x_mask
        )
        x_m = t2i_modulate(self.norm1(x), shift_msa, scale_msa)
        x_s = self.attn(x_m.reshape(B, T * S, C)).view(B, T, S, C)
        x = x + self.drop_path(gate_msa * x_s)
        x = x + self.cross_attn(x.reshape(B, T * S, C), y, y_mask).view(B, T, S, C)
        x_m = t2i_modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + self.drop_path(gate_mlp * self.mlp(x_m))


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class PixArt(ModelMixin, ConfigMixin, AttentionBackendMixin, VideoModel):
    """forward(x [B, C, H, W] or [B, C, 1, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L])
    -> [B, 2C, H, W] (or [B, 2C, 1, H, W]) fp32."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        input_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        pred_sigma: bool = True,
        drop_path: float = 0.0,
        caption_channels: int = 4096,
        model_max_length: int = 120,
        space_scale: float = 1.0,  # upstream "lewei_scale"
        attention: str = "sdpa",
    ):
        super().__init__()
        if input_size % patch_size:
            raise KinemaError(f"input_size {input_size} must be a multiple of patch_size {patch_size}")
        self.out_channels = in_channels * 2 if pred_sigma else in_channels
        self.grid = input_size // patch_size
        self.gradient_checkpointing = False

        self.x_embedder = PatchEmbed2D(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        pos = get_2d_sincos_pos_embed(hidden_size, (self.grid, self.grid), scale=space_scale, base_size=self.grid)
        self.register_buffer("pos_embed", pos.unsqueeze(0))
        drops = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            [PixArtBlock(hidden_size, num_heads, mlp_ratio, drops[i], backend=attention) for i in range(depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, patch_size * patch_size, self.out_channels)
        init_pixart_weights(self)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(caption_channels=c.caption_channels, caption_length=c.model_max_length,
                             patch_size=(1, c.patch_size, c.patch_size), caption_dropout=True, max_frames=1,
                             latent_size=(1, c.input_size, c.input_size))

    def null_caption(self) -> torch.Tensor:
        return self.y_embedder.y_embedding

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        force_drop_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        cfg = self.config
        video = x.dim() == 5  # [B, C, 1, H, W]: a one-frame video, as the video pipeline passes it
        if video:
            if x.shape[2] != 1:
                raise KinemaError(f"PixArt is an image model: one latent frame, got {x.shape[2]}; use num_frames=1")
            x = x[:, :, 0]
        B, _, H, W = x.shape
        if (H, W) != (cfg.input_size, cfg.input_size):
            raise KinemaError(f"PixArt was built for {cfg.input_size}x{cfg.input_size} latents, got {H}x{W}")
        check_caption(y, B, cfg.caption_channels)
        dtype = self.x_embedder.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)

        x = (self.x_embedder(x) + self.pos_embed).unsqueeze(1)  # [B, 1, S, C]
        t = self.t_embedder(timestep)
        t_mod = self.t_block(t)
        y = self.y_embedder(y, self.training, force_drop_ids).squeeze(1)
        y_mask = caption_mask(mask, B, y.shape[1])

        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, y, y_mask, t_mod)
            else:
                x = block(x, y, y_mask, t_mod)

        x = self.final_layer(x, t)  # [B, 1, S, p*p*2C]
        p = cfg.patch_size
        x = x.reshape(B, self.grid, self.grid, p, p, self.out_channels)
        x = torch.einsum("bhwpqc->bchpwq", x).reshape(B, self.out_channels, H, W)
        return x[:, :, None].float() if video else x.float()


# ---------------------------------------------------------------------------------------------
# flavours
# ---------------------------------------------------------------------------------------------


def PixArt_XL_2(**kwargs) -> PixArt:
    return PixArt(**{"depth": 28, "hidden_size": 1152, "patch_size": 2, "num_heads": 16, **kwargs})
