"""STDiT: the Open-Sora 1.0 spatial-temporal diffusion transformer (``STDiT-XL/2``).

PixArt-alpha's blocks with a temporal self-attention inserted after the spatial one:

    x [B, C, T, H, W] --patch embed + 2D sincos--> tokens [B, T, S, C]
      --N x STDiTBlock: spatial attn over S (per frame) -> temporal attn over T (per patch)
                        -> cross-attn to the caption -> MLP--> final layer --> [B, 2C, T, H, W]

The temporal projection starts at zero, so a fresh STDiT loaded from PixArt weights computes
the image model frame by frame. Parameter and buffer names match the upstream checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import torch
from diffusers.configuration_utils import register_to_config
# diffusers' pipeline loader finds a component's loading methods through the base classes its module
# names (ModelMixin), so a pipeline folder holding this model loads
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import nn

from kinema.core import KinemaError

from .contract import ModelContract
from .embeddings import CaptionEmbedder, TimestepEmbedder
from .flavours import flavours
from .layers import (
    Attention,
    BlockInputs,
    PatchEmbed3D,
    T2IFinalLayer,
    adaln_projection,
    check_frame_mask,
    drop_path_rates,
    frame_modulation,
    init_pixart_weights,
    run_blocks,
    unpatchify,
)
from .pixart import PixArtBlock, PixArtFamily
from .pos_embed import get_1d_sincos_pos_embed, get_2d_sincos_pos_embed

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class STDiTBlock(PixArtBlock):
    """PixArt's block with spatial attention per frame, then temporal attention per patch position.

    As in Open-Sora 1.0 the temporal branch reads the un-normalised, un-modulated stream and is
    gated by the spatial gate ``gate_msa`` (there is no temporal norm or adaLN).
    """

    per_frame = True

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, drop_path=0.0, backend="sdpa"):
        super().__init__(hidden_size, num_heads, mlp_ratio, drop_path, backend)
        self.attn_temp = Attention(hidden_size, num_heads, qkv_bias=True, backend=backend)

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """x [B, T, S, C]; ``inputs.tpe`` [1, T, C] is set for the first block only."""
        B, T, S, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(inputs)
        x = self.self_attention(x, shift_msa, scale_msa, gate_msa)

        # temporal: attention among the T frames of each patch position
        x_t = x.transpose(1, 2).reshape(B * S, T, C)
        if inputs.tpe is not None:
            x_t = x_t + inputs.tpe
        x_t = self.attn_temp(x_t).view(B, S, T, C).transpose(1, 2)
        # the temporal gate is gate_msa at timestep t for every frame, even with x_mask
        temporal_gate = gate_msa if inputs.x_mask is None else frame_modulation(self.scale_shift_table, inputs.t_mod)[2]
        x = x + self.drop_path(temporal_gate * x_t)

        return self.cross_attention_and_mlp(x, inputs, shift_mlp, scale_mlp, gate_mlp)


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class STDiT(PixArtFamily):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L] (1 = valid token),
    x_mask [B, T] (True = frame being denoised)) -> [B, 2C, T, H, W] fp32.

    ``input_size`` (T, H, W) is the latent size the fixed position tables are built for.
    ``final_layer_legacy=True`` computes given frames in the final layer as the released Open-Sora 1.1 code
    does (see :class:`~kinema.dit.layers.T2IFinalLayer`); converted Open-Sora checkpoints set it.
    """

    block_type = STDiTBlock

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
        final_layer_legacy: bool = False,
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
        self.t_block = adaln_projection(hidden_size, 6)
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        pos = get_2d_sincos_pos_embed(hidden_size, (grid_h, grid_w), scale=space_scale)
        self.register_buffer("pos_embed", pos.unsqueeze(0))
        self.register_buffer("pos_embed_temporal", get_1d_sincos_pos_embed(hidden_size, num_t, time_scale)[None])
        self.blocks = nn.ModuleList(
            [self.block_type(hidden_size, num_heads, mlp_ratio, drop, backend=attention)
             for drop in drop_path_rates(drop_path, depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, math.prod(patch_size), self.out_channels, final_layer_legacy)
        init_pixart_weights(self)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(latent_channels=c.in_channels, caption_channels=c.caption_channels,
                             caption_length=c.model_max_length,
                             patch_size=tuple(c.patch_size), frame_mask=True, caption_dropout=True,
                             latent_size=tuple(c.input_size), temporal_attention=True)

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
                f"{type(self).__name__} was built for latents of (T, H, W) = {tuple(cfg.input_size)}, got "
                f"{tuple(x.shape[2:])}; build it with input_size matching the data (or use STDiT2 for variable sizes)"
            )
        x, y = self.cast_inputs(x, y)
        T, H, W = self.grid
        x_mask = check_frame_mask(x_mask, B, T)

        x = self.x_embedder(x).view(B, T, H * W, -1) + self.pos_embed[:, None]
        t, t0 = self.embed_timestep(timestep, x_mask)  # t0: given frames are modulated at timestep 0
        y, y_mask = self.embed_caption(y, mask, force_drop_ids)
        t0_mod = None if t0 is None else self.t_block(t0)
        x = self.apply_blocks(x, BlockInputs(y, y_mask, self.t_block(t), t0_mod, x_mask=x_mask))

        x = self.final_layer(x, t, t0, x_mask)
        return unpatchify(x, self.grid, cfg.patch_size, self.out_channels).float()

    def apply_blocks(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        # the temporal table enters the first block's temporal attention only, as upstream
        x = run_blocks(self, self.blocks[:1], x, replace(inputs, tpe=self.pos_embed_temporal))
        return run_blocks(self, self.blocks[1:], x, inputs)


# ---------------------------------------------------------------------------------------------
# flavours: STDiT-S/2, -B/2, -L/2, -XL/2
# ---------------------------------------------------------------------------------------------

FLAVOURS = flavours(STDiT, patch_size=(1, 2, 2))
STDiT_XL_2 = FLAVOURS.XL
