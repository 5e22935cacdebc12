"""STDiT: the Open-Sora 1.0 spatial-temporal diffusion transformer (``STDiT-XL/2``).

PixArt-alpha's blocks with a temporal self-attention inserted after the spatial one:

    x [B, C, T, H, W] --patch embed + 2D sincos--> tokens [B, T, S, C]
      --N x STDiTBlock: spatial attn over S (per frame) -> temporal attn over T (per patch)
                        -> cross-attn to the caption -> MLP--> final layer --> [B, 2C, T, H, W]

The temporal projection starts at zero, so a fresh STDiT loaded from PixArt weights computes
the image model frame by frame. Parameter and buffer names match the upstream checkpoints.
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
    PatchEmbed3D,
    T2IFinalLayer,
    caption_mask,
    check_caption,
    check_frame_mask,
    frame_modulation,
    init_pixart_weights,
    layer_norm,
    t2i_modulate,
    unpatchify,
    zero_linear,
)
from .pos_embed import get_1d_sincos_pos_embed, get_2d_sincos_pos_embed

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class STDiTBlock(nn.Module):
    """Sequential spatial -> temporal attention, then cross-attention and MLP.

    As in Open-Sora 1.0 the temporal branch reads the un-normalised, un-modulated stream and is
    gated by the spatial gate ``gate_msa`` (there is no temporal norm or adaLN).
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
        self.attn_temp = Attention(hidden_size, num_heads, qkv_bias=True, backend=backend)

    def forward(self, x, y, y_mask, t_mod, tpe=None, x_mask=None, t0_mod=None):
        """x [B, T, S, C]; y [B, L, C]; y_mask [B, L] or None; t_mod [B, 6C]; tpe [1, T, C] (block 0 only);
        x_mask [B, T] (True = frame being denoised; False frames are modulated with t0_mod)."""
        B, T, S, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = frame_modulation(
            self.scale_shift_table, t_mod, t0_mod, x_mask
        )

        # spatial: attention among the S patches of each frame
        x_m = t2i_modulate(self.norm1(x), shift_msa, scale_msa)
        x_s = self.attn(x_m.reshape(B * T, S, C)).view(B, T, S, C)
        x = x + self.drop_path(gate_msa * x_s)

        # temporal: attention among the T frames of each patch position
        x_t = x.transpose(1, 2).reshape(B * S, T, C)
        if tpe is not None:
            x_t = x_t + tpe
        x_t = self.attn_temp(x_t).view(B, S, T, C).transpose(1, 2)
        # the temporal gate is gate_msa at timestep t for every frame, even with x_mask
        temporal_gate = gate_msa if x_mask is None else frame_modulation(self.scale_shift_table, t_mod)[2]
        x = x + self.drop_path(temporal_gate * x_t)

        x = x + self.cross_attn(x.reshape(B, T * S, C), y, y_mask).view(B, T, S, C)

        x_m = t2i_modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + self.drop_path(gate_mlp * self.mlp(x_m))


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class STDiT(ModelMixin, ConfigMixin, AttentionBackendMixin, VideoModel):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L] (1 = valid token),
    x_mask [B, T] (True = frame being denoised)) -> [B, 2C, T, H, W] fp32.

    ``input_size`` (T, H, W) is the latent size the fixed position tables are built for.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        input_size: tuple = (1, 32, 32),
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
        self.grid = tuple(n // p for n, p in zip(input_size, patch_size))  # (T, H, W) in patches
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
            [STDiTBlock(hidden_size, num_heads, mlp_ratio, drops[i], backend=attention) for i in range(depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, patch_size[0] * patch_size[1] * patch_size[2], self.out_channels)

        init_pixart_weights(self)
        for block in self.blocks:
            zero_linear(block.attn_temp.proj)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(caption_channels=c.caption_channels, caption_length=c.model_max_length,
                             patch_size=tuple(c.patch_size), frame_mask=True, caption_dropout=True,
                             latent_size=tuple(c.input_size), temporal_attention=True)

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
                f"STDiT was built for latents of (T, H, W) = {tuple(cfg.input_size)}, got {tuple(x.shape[2:])}; "
                "build it with input_size matching the data (or use STDiT2 for variable sizes)"
            )
        check_caption(y, B, cfg.caption_channels)
        T, H, W = self.grid
        x_mask = check_frame_mask(x_mask, B, T)
        dtype = self.x_embedder.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)

        x = self.x_embedder(x).view(B, T, H * W, -1) + self.pos_embed[:, None]

        t = self.t_embedder(timestep)
        t_mod = self.t_block(t)
        t0 = t0_mod = None
        if x_mask is not None:
            t0 = self.t_embedder(torch.zeros_like(timestep))
            t0_mod = self.t_block(t0)

        y = self.y_embedder(y, self.training, force_drop_ids).squeeze(1)
        y_mask = caption_mask(mask, B, y.shape[1])

        for i, block in enumerate(self.blocks):
            tpe = self.pos_embed_temporal if i == 0 else None
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, y, y_mask, t_mod, tpe, x_mask, t0_mod)
            else:
                x = block(x, y, y_mask, t_mod, tpe, x_mask, t0_mod)

        x = self.final_layer(x, t, t0, x_mask)
        return unpatchify(x, self.grid, cfg.patch_size, self.out_channels).float()


# ---------------------------------------------------------------------------------------------
# flavours
# ---------------------------------------------------------------------------------------------


def STDiT_XL_2(**kwargs) -> STDiT:
    return STDiT(**{"depth": 28, "hidden_size": 1152, "patch_size": (1, 2, 2), "num_heads": 16, **kwargs})
