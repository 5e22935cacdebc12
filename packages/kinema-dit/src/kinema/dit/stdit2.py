"""STDiT2: the Open-Sora 1.1 spatial-temporal diffusion transformer (``STDiT2-XL/2``).

What changes from STDiT (stdit.py):
- any T, H, W: inputs are padded to patch multiples and the output cropped back;
- the spatial sincos table is computed per call for the actual grid, scaled to the pixel size
  (scale = sqrt(H_px * W_px) / input_sq_size, base_size = round(sqrt(S)));
- temporal attention has its own LayerNorm + adaLN (``norm_temp``, ``scale_shift_table_temporal``,
  ``t_block_temp``) and RoPE over frames instead of a temporal sincos table;
- RMS QK-norm (``qk_norm``) in spatial and temporal attention;
- the spatial adaLN is conditioned on t + (pixel height/width, aspect ratio), the temporal one
  on t + (number of frames, fps).

Upstream quirks kept for weight compatibility: RoPE is applied before the QK-norm
(``qk_norm_legacy=True``; False gives norm-then-rope), and the final layer is modulated by the bare
timestep embedding t for denoised frames but by t0 + size conditions for given frames.

Released behaviour that is an option, off in a fresh model and on in converted Open-Sora 1.1 weights:
``final_layer_legacy`` (given frames normalised and modulated twice in the final layer, see
:class:`~kinema.dit.layers.T2IFinalLayer`) and ``no_temporal_pos_emb_legacy`` (``no_temporal_pos_emb`` is
stored but RoPE is applied anyway).
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

from .contract import ModelContract, size_rows
from .embeddings import CaptionEmbedder, SizeEmbedder, TimestepEmbedder
from .flavours import SIZES, flavours
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
    layer_norm,
    run_blocks,
    t2i_modulate,
    unpatchify,
)
from .pixart import PixArtBlock, PixArtFamily
from .pos_embed import RotaryEmbedding, position_embedding_2d

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class STDiT2Block(PixArtBlock):
    """PixArt's block with spatial attention per frame, then a temporal attention with its own
    LayerNorm and adaLN (``scale_shift_table_temporal``) and RoPE over the frames."""

    per_frame = True

    def __init__(
        self, hidden_size, num_heads, mlp_ratio=4.0, drop_path=0.0, qk_norm=False, rope=None,
        qk_norm_legacy=True, backend="sdpa",
    ):
        super().__init__(hidden_size, num_heads, mlp_ratio, drop_path, backend, qk_norm=qk_norm)
        self.scale_shift_table_temporal = nn.Parameter(torch.randn(3, hidden_size) / hidden_size**0.5)
        self.norm_temp = layer_norm(hidden_size)
        self.attn_temp = Attention(
            hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, rope=rope,
            rope_before_norm=qk_norm_legacy, backend=backend,
        )

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """x [B, T, S, C]; ``inputs.t_tmp_mod`` [B, 3C] is the temporal adaLN (t0 version for given frames)."""
        B, T, S, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(inputs)
        shift_tmp, scale_tmp, gate_tmp = frame_modulation(
            self.scale_shift_table_temporal, inputs.t_tmp_mod, inputs.t0_tmp_mod, inputs.x_mask
        )
        x = self.self_attention(x, shift_msa, scale_msa, gate_msa)

        # temporal: attention among the T frames of each patch position (RoPE inside attn_temp)
        x_m = t2i_modulate(self.norm_temp(x), shift_tmp, scale_tmp)
        x_t = self.attn_temp(x_m.transpose(1, 2).reshape(B * S, T, C)).view(B, S, T, C).transpose(1, 2)
        x = x + self.drop_path(gate_tmp * x_t)

        return self.cross_attention_and_mlp(x, inputs, shift_mlp, scale_mlp, gate_mlp)


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class STDiT2(PixArtFamily):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L] (1 = valid token),
    x_mask [B, T] (True = frame being denoised), num_frames, height, width (pixels), ar (height/width
    or whatever convention the weights were trained with), fps: [B] tensors or numbers, or [n] for a batch of
    k*n such as a guided batch, tiled as upstream repeats them) -> [B, 2C, T, H, W] fp32.
    """

    @register_to_config
    def __init__(
        self,
        input_sq_size: int = 32,
        in_channels: int = 4,
        patch_size: tuple = (1, 2, 2),
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        pred_sigma: bool = True,
        drop_path: float = 0.0,
        no_temporal_pos_emb: bool = False,
        caption_channels: int = 4096,
        model_max_length: int = 120,
        qk_norm: bool = False,
        qk_norm_legacy: bool = True,
        final_layer_legacy: bool = False,
        no_temporal_pos_emb_legacy: bool = False,
        attention: str = "sdpa",
    ):
        super().__init__()
        if hidden_size % 3:
            raise KinemaError(f"STDiT2 hidden_size must be a multiple of 3 (size embedders use C/3), got {hidden_size}")
        patch_size = tuple(patch_size)
        self.out_channels = in_channels * 2 if pred_sigma else in_channels
        self.gradient_checkpointing = False

        self.x_embedder = PatchEmbed3D(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.t_block = adaln_projection(hidden_size, 6)
        self.t_block_temp = adaln_projection(hidden_size, 3)
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        self.rope = RotaryEmbedding(hidden_size // num_heads)
        without_rope = no_temporal_pos_emb and not no_temporal_pos_emb_legacy
        rope = None if without_rope else self.rope.rotate_queries_or_keys
        self.blocks = nn.ModuleList(
            [STDiT2Block(hidden_size, num_heads, mlp_ratio, drop, qk_norm, rope, qk_norm_legacy, attention)
             for drop in drop_path_rates(drop_path, depth)]
        )
        self.final_layer = T2IFinalLayer(hidden_size, math.prod(patch_size), self.out_channels, final_layer_legacy)
        self.csize_embedder = SizeEmbedder(hidden_size // 3)  # (height, width) -> 2C/3
        self.ar_embedder = SizeEmbedder(hidden_size // 3)  # aspect ratio -> C/3
        self.fl_embedder = SizeEmbedder(hidden_size)  # number of frames
        self.fps_embedder = SizeEmbedder(hidden_size)

        init_pixart_weights(self)
        nn.init.normal_(self.t_block_temp[1].weight, std=0.02)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(latent_channels=c.in_channels, caption_channels=c.caption_channels,
                             caption_length=c.model_max_length,
                             patch_size=tuple(c.patch_size), frame_mask=True, size_conditions=True,
                             caption_dropout=True, temporal_attention=True)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        x_mask: Optional[torch.Tensor] = None,
        num_frames=None,
        height=None,
        width=None,
        ar=None,
        fps=None,
        force_drop_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        cfg = self.config
        B, _, Tx, Hx, Wx = x.shape
        x, y = self.cast_inputs(x, y)
        sizes = {"num_frames": num_frames, "height": height, "width": width, "ar": ar, "fps": fps}
        num_frames, height, width, ar, fps = (_per_sample(v, k, B, x.device) for k, v in sizes.items())
        pt, ph, pw = cfg.patch_size
        T, H, W = math.ceil(Tx / pt), math.ceil(Hx / ph), math.ceil(Wx / pw)
        S = H * W
        x_mask = check_frame_mask(x_mask, B, T)

        # size conditions: spatial adaLN sees (H, W, ar), temporal adaLN sees (frames, fps)
        data_info = torch.cat([self.csize_embedder(torch.stack([height, width], 1), B), self.ar_embedder(ar, B)], 1)
        fl = self.fl_embedder(num_frames, B) + self.fps_embedder(fps, B)

        # spatial sincos scaled to the pixel size of the first sample
        scale = math.sqrt(float(height[0]) * float(width[0])) / cfg.input_sq_size
        pos = position_embedding_2d(cfg.hidden_size, H, W, scale, round(math.sqrt(S)), x.device, x.dtype)
        x = self.x_embedder(x).view(B, T, S, -1) + pos[:, None]

        t, t0 = self.embed_timestep(timestep, x_mask)  # t0: given frames are modulated at timestep 0
        t0_spc = None if t0 is None else t0 + data_info
        y, y_mask = self.embed_caption(y, mask, force_drop_ids)
        inputs = BlockInputs(y, y_mask, self.t_block(t + data_info), t_tmp_mod=self.t_block_temp(t + fl), x_mask=x_mask)
        if t0 is not None:
            inputs = replace(inputs, t0_mod=self.t_block(t0_spc), t0_tmp_mod=self.t_block_temp(t0 + fl))
        x = run_blocks(self, self.blocks, x, inputs)

        # upstream asymmetry: bare t for denoised frames, t0 + data_info for given frames
        x = self.final_layer(x, t, t0_spc, x_mask)
        x = unpatchify(x, (T, H, W), (pt, ph, pw), self.out_channels)
        return x[:, :, :Tx, :Hx, :Wx].float()


def _per_sample(value, name: str, batch_size: int, device) -> torch.Tensor:
    if value is None:
        raise KinemaError(
            f"STDiT2 needs {name}: pass num_frames, height, width (pixels), ar and fps, one value per sample"
        )
    return size_rows(value, name, batch_size, device)


# ---------------------------------------------------------------------------------------------
# flavours: STDiT2-S/2, -B/2, -L/2, -XL/2 with Open-Sora 1.1's settings. The size embedders need a
# hidden size divisible by 3: L takes 1056 (16 heads of 66, RoPE needs an even head width), the
# multiple of 96 nearest DiT-L's 1024 that keeps its 16 heads (and so its tensor-parallel splits)
# ---------------------------------------------------------------------------------------------

FLAVOURS = flavours(STDiT2, sizes={**SIZES, "L": (24, 1056, 16)}, patch_size=(1, 2, 2), qk_norm=True,
                    input_sq_size=512, model_max_length=200)
STDiT2_XL_2 = FLAVOURS.XL
