"""PixArt-alpha-style text-to-image diffusion transformer (``PixArt-XL/2``), and what its family shares.

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
from .loading import ConfigCheckedLoading
from .embeddings import CaptionEmbedder, TimestepEmbedder
from .flavours import flavours
from .layers import (
    Attention,
    AttentionBackendMixin,
    BlockInputs,
    DropPath,
    Mlp,
    MultiHeadCrossAttention,
    PatchEmbed2D,
    T2IFinalLayer,
    adaln_projection,
    caption_mask,
    check_caption,
    drop_path_rates,
    frame_modulation,
    init_pixart_weights,
    layer_norm,
    run_blocks,
    t2i_modulate,
)
from .pos_embed import get_2d_sincos_pos_embed

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class PixArtBlock(nn.Module):
    """adaLN-single block: self-attention over all T*S tokens, cross-attention to the caption, MLP.

    x is [B, T, S, C]; with T = 1 this is PixArt's image block, with T > 1 it is full 3D attention (DiT).
    The spatial-temporal blocks (STDiT, STDiT2) extend it with ``per_frame`` self-attention.
    """

    per_frame = False  # self-attention within each frame (S tokens) instead of over all T*S

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, drop_path=0.0, backend="sdpa", qk_norm=False):
        super().__init__()
        self.norm1 = layer_norm(hidden_size)
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, backend=backend)
        self.cross_attn = MultiHeadCrossAttention(hidden_size, num_heads, backend=backend)
        self.norm2 = layer_norm(hidden_size)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), hidden_size)
        self.drop_path = DropPath(drop_path)
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(inputs)
        x = self.self_attention(x, shift_msa, scale_msa, gate_msa)
        return self.cross_attention_and_mlp(x, inputs, shift_mlp, scale_mlp, gate_mlp)

    def modulation(self, inputs: BlockInputs) -> tuple[torch.Tensor, ...]:
        """shift, scale, gate of the self-attention, then of the MLP; at t = 0 for given frames."""
        return frame_modulation(self.scale_shift_table, inputs.t_mod, inputs.t0_mod, inputs.x_mask)

    def self_attention(self, x, shift, scale, gate):
        B, T, S, C = x.shape
        groups, tokens = (B * T, S) if self.per_frame else (B, T * S)
        x_m = t2i_modulate(self.norm1(x), shift, scale)
        x_s = self.attn(x_m.reshape(groups, tokens, C)).view(B, T, S, C)
        return x + self.drop_path(gate * x_s)

    def cross_attention_and_mlp(self, x, inputs: BlockInputs, shift, scale, gate):
        """Cross-attention to the caption (ungated, as upstream), then the modulated MLP."""
        B, T, S, C = x.shape
        x = x + self.cross_attn(x.reshape(B, T * S, C), inputs.y, inputs.y_mask).view(B, T, S, C)
        x_m = t2i_modulate(self.norm2(x), shift, scale)
        return x + self.drop_path(gate * self.mlp(x_m))


# ---------------------------------------------------------------------------------------------
# what PixArt, DiT, STDiT and STDiT2 share around their blocks
# ---------------------------------------------------------------------------------------------


# AttentionBackendMixin first: its set_attention_backend replaces ModelMixin's (diffusers' processors)
class PixArtFamily(AttentionBackendMixin, ConfigCheckedLoading, ModelMixin, ConfigMixin, VideoModel):
    """The stem and head of the PixArt family, under the upstream names: ``x_embedder`` (patches ->
    tokens), ``t_embedder`` (timestep -> t [B, C]), ``t_block`` (t -> the adaLN-single t_mod [B, 6C]
    every block offsets with its own table), ``y_embedder`` (T5 features -> caption tokens; its
    ``y_embedding`` is the null caption), ``blocks`` and ``final_layer``."""

    _supports_gradient_checkpointing = True

    def null_caption(self) -> torch.Tensor:
        return self.y_embedder.y_embedding

    def cast_inputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check the caption features; x and y in the weights' dtype."""
        self.check_caption_given(y)
        check_caption(y, x.shape[0], self.config.caption_channels)
        dtype = self.x_embedder.proj.weight.dtype
        return x.to(dtype), y.to(dtype)

    def embed_timestep(self, timestep: torch.Tensor, x_mask: Optional[torch.Tensor] = None):
        """t [B, C] at the timestep, and t0 at timestep 0 for the frames x_mask marks given (None without)."""
        t = self.t_embedder(timestep)
        t0 = None if x_mask is None else self.t_embedder(torch.zeros_like(timestep))
        return t, t0

    def embed_caption(self, y: torch.Tensor, mask: Optional[torch.Tensor], force_drop_ids=None):
        """Caption tokens [B, L, C] (null caption where dropped) and their bool mask [B, L] (or None)."""
        y = self.y_embedder(y, self.training, force_drop_ids).squeeze(1)
        return y, caption_mask(mask, y.shape[0], y.shape[1])


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class PixArt(PixArtFamily):
    """forward(x [B, C, H, W] or [B, C, 1, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L])
    -> [B, 2C, H, W] (or [B, 2C, 1, H, W]) fp32."""

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
        self.t_block = adaln_projection(hidden_size, 6)
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        pos = get_2d_sincos_pos_embed(hidden_size, (self.grid, self.grid), scale=space_scale, base_size=self.grid)
        self.register_buffer("pos_embed", pos.unsqueeze(0))
        self.blocks = nn.ModuleList(
            [PixArtBlock(hidden_size, num_heads, mlp_ratio, drop, backend=attention)
             for drop in drop_path_rates(drop_path, depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, patch_size * patch_size, self.out_channels)
        init_pixart_weights(self)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(latent_channels=c.in_channels, caption_channels=c.caption_channels,
                             caption_length=c.model_max_length,
                             patch_size=(1, c.patch_size, c.patch_size), caption_dropout=True, max_frames=1,
                             latent_size=(1, c.input_size, c.input_size))

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
        x, y = self.cast_inputs(x, y)

        x = (self.x_embedder(x) + self.pos_embed).unsqueeze(1)  # [B, 1, S, C]
        t = self.t_embedder(timestep)
        y, y_mask = self.embed_caption(y, mask, force_drop_ids)
        x = run_blocks(self, self.blocks, x, BlockInputs(y, y_mask, self.t_block(t)))

        x = self.final_layer(x, t)  # [B, 1, S, p*p*2C]
        p = cfg.patch_size
        x = x.reshape(B, self.grid, self.grid, p, p, self.out_channels)
        x = torch.einsum("bhwpqc->bchpwq", x).reshape(B, self.out_channels, H, W)
        return x[:, :, None].float() if video else x.float()


# ---------------------------------------------------------------------------------------------
# flavours: PixArt-S/2, -B/2, -L/2, -XL/2
# ---------------------------------------------------------------------------------------------

FLAVOURS = flavours(PixArt, patch_size=2)
PixArt_XL_2 = FLAVOURS.XL
