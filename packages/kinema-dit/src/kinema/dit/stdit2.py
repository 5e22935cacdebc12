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
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from kinema.core import KinemaError

from .contract import ModelContract, VideoModel
from .embeddings import CaptionEmbedder, SizeEmbedder, TimestepEmbedder
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
from .pos_embed import RotaryEmbedding, position_embedding_2d

# ---------------------------------------------------------------------------------------------
# block
# ---------------------------------------------------------------------------------------------


class STDiT2Block(nn.Module):
    def __init__(
        self, hidden_size, num_heads, mlp_ratio=4.0, drop_path=0.0, qk_norm=False, rope=None,
        qk_norm_legacy=True, backend="sdpa",
    ):
        super().__init__()
        rope_before_norm = qk_norm_legacy
        self.norm1 = layer_norm(hidden_size)
        self.attn = Attention(hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, backend=backend)
        self.cross_attn = MultiHeadCrossAttention(hidden_size, num_heads, backend=backend)
        self.norm2 = layer_norm(hidden_size)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), hidden_size)
        self.drop_path = DropPath(drop_path)
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)
        self.scale_shift_table_temporal = nn.Parameter(torch.randn(3, hidden_size) / hidden_size**0.5)
        self.norm_temp = layer_norm(hidden_size)
        self.attn_temp = Attention(
            hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, rope=rope,
            rope_before_norm=rope_before_norm, backend=backend,
        )

    def forward(self, x, y, y_mask, t_mod, t_tmp_mod, x_mask=None, t0_mod=None, t0_tmp_mod=None):
        """x [B, T, S, C]; t_mod [B, 6C] (spatial adaLN), t_tmp_mod [B, 3C] (temporal adaLN);
        frames with x_mask False take the t0 versions."""
        B, T, S, C = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = frame_modulation(
            self.scale_shift_table, t_mod, t0_mod, x_mask
        )
        shift_tmp, scale_tmp, gate_tmp = frame_modulation(
            self.scale_shift_table_temporal, t_tmp_mod, t0_tmp_mod, x_mask
        )

        # spatial: attention among the S patches of each frame
        x_m = t2i_modulate(self.norm1(x), shift_msa, scale_msa)
        x_s = self.attn(x_m.reshape(B * T, S, C)).view(B, T, S, C)
        x = x + self.drop_path(gate_msa * x_s)

        # temporal: attention among the T frames of each patch position (RoPE inside attn_temp)
        x_m = t2i_modulate(self.norm_temp(x), shift_tmp, scale_tmp)
        x_t = self.attn_temp(x_m.transpose(1, 2).reshape(B * S, T, C)).view(B, S, T, C).transpose(1, 2)
        x = x + self.drop_path(gate_tmp * x_t)

        x = x + self.cross_attn(x.reshape(B, T * S, C), y, y_mask).view(B, T, S, C)

        x_m = t2i_modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + self.drop_path(gate_mlp * self.mlp(x_m))


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------


class STDiT2(ModelMixin, ConfigMixin, AttentionBackendMixin, VideoModel):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L] (1 = valid token),
    x_mask [B, T] (True = frame being denoised), num_frames, height, width (pixels), ar (height/width
    or whatever convention the weights were trained with), fps: [B] tensors or numbers) -> [B, 2C, T, H, W] fp32.
    """

    _supports_gradient_checkpointing = True

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
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.t_block_temp = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 3 * hidden_size))
        self.y_embedder = CaptionEmbedder(caption_channels, hidden_size, class_dropout_prob, model_max_length)
        self.rope = RotaryEmbedding(hidden_size // num_heads)
        rope = None if no_temporal_pos_emb else self.rope.rotate_queries_or_keys
        drops = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            [
                STDiT2Block(hidden_size, num_heads, mlp_ratio, drops[i], qk_norm, rope, qk_norm_legacy, attention)
                for i in range(depth)
            ]
        )
        self.final_layer = T2IFinalLayer(hidden_size, patch_size[0] * patch_size[1] * patch_size[2], self.out_channels)
        self.csize_embedder = SizeEmbedder(hidden_size // 3)  # (height, width) -> 2C/3
        self.ar_embedder = SizeEmbedder(hidden_size // 3)  # aspect ratio -> C/3
        self.fl_embedder = SizeEmbedder(hidden_size)  # number of frames
        self.fps_embedder = SizeEmbedder(hidden_size)

        init_pixart_weights(self)
        nn.init.normal_(self.t_block_temp[1].weight, std=0.02)
        for block in self.blocks:
            zero_linear(block.attn_temp.proj)

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(caption_channels=c.caption_channels, caption_length=c.model_max_length,
                             patch_size=tuple(c.patch_size), frame_mask=True, size_conditions=True,
                             caption_dropout=True, temporal_attention=True)

    def null_caption(self) -> torch.Tensor:
        return self.y_embedder.y_embedding

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
        check_caption(y, B, cfg.caption_channels)
        sizes = {"num_frames": num_frames, "height": height, "width": width, "ar": ar, "fps": fps}
        num_frames, height, width, ar, fps = (_per_sample(v, k, B, x.device) for k, v in sizes.items())
        pt, ph, pw = cfg.patch_size
        T, H, W = math.ceil(Tx / pt), math.ceil(Hx / ph), math.ceil(Wx / pw)
        S = H * W
        x_mask = check_frame_mask(x_mask, B, T)
        dtype = self.x_embedder.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)

        # size conditions: spatial adaLN sees (H, W, ar), temporal adaLN sees (frames, fps)
        data_info = torch.cat([self.csize_embedder(torch.stack([height, width], 1), B), self.ar_embedder(ar, B)], 1)
        fl = self.fl_embedder(num_frames, B) + self.fps_embedder(fps, B)

        # spatial sincos scaled to the pixel size of the first sample
        scale = math.sqrt(float(height[0]) * float(width[0])) / cfg.input_sq_size
        pos = position_embedding_2d(cfg.hidden_size, H, W, scale, round(math.sqrt(S)), x.device, dtype)
        x = self.x_embedder(x).view(B, T, S, -1) + pos[:, None]

        t = self.t_embedder(timestep)
        t_mod, t_tmp_mod = self.t_block(t + data_info), self.t_block_temp(t + fl)
        t0_spc = t0_mod = t0_tmp_mod = None
        if x_mask is not None:
            t0 = self.t_embedder(torch.zeros_like(timestep))
            t0_spc = t0 + data_info
            t0_mod, t0_tmp_mod = self.t_block(t0_spc), self.t_block_temp(t0 + fl)

        y = self.y_embedder(y, self.training, force_drop_ids).squeeze(1)
        y_mask = caption_mask(mask, B, y.shape[1])

        for block in self.blocks:
            args = (x, y, y_mask, t_mod, t_tmp_mod, x_mask, t0_mod, t0_tmp_mod)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, *args)
            else:
                x = block(*args)

        # upstream asymmetry: bare t for denoised frames, t0 + data_info for given frames
        x = self.final_layer(x, t, t0_spc, x_mask)
        x = unpatchify(x, (T, H, W), (pt, ph, pw), self.out_channels)
        return x[:, :, :Tx, :Hx, :Wx].float()


def _per_sample(value, name: str, batch_size: int, device) -> torch.Tensor:
    if value is None:
        raise KinemaError(
            f"STDiT2 needs {name}: pass num_frames, height, width (pixels), ar and fps, one value per sample"
        )
    value = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if value.numel() == 1:
        value = value.expand(batch_size)
    if value.numel() != batch_size:
        raise KinemaError(f"{name} has {value.numel()} values for a batch of {batch_size}")
    return value


# ---------------------------------------------------------------------------------------------
# flavours
# ---------------------------------------------------------------------------------------------


def STDiT2_XL_2(**kwargs) -> STDiT2:
    defaults = {"depth": 28, "hidden_size": 1152, "patch_size": (1, 2, 2), "num_heads": 16,
                "qk_norm": True, "input_sq_size": 512, "model_max_length": 200}
    return STDiT2(**{**defaults, **kwargs})
