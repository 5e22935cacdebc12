"""LatteT2V: the diffusion transformer of Open-Sora-Plan 1.0 (Latte + PixArt-alpha adaLN-single).

A latent video (B, 4, F + N, H, W) is cut into per-frame 2x2 patches. Each of the `num_layers` layers is a
*spatial* block (self-attention over the patches of one frame, cross-attention to the caption, MLP) followed
by a *temporal* block (self-attention over the F video frames at one patch position, MLP). The N extra frames
are still images trained jointly with the video ("use_image_num"): they go through the spatial blocks only.
Timestep conditioning is PixArt's adaLN-single: one shared projection `adaln_single` gives six modulation
vectors that every block offsets with its own learned `scale_shift_table`.

Parameter names follow the diffusers modules the upstream model is built from (`to_q/to_k/to_v/to_out.0`,
`ff.net.0.proj`, `adaln_single.emb.timestep_embedder.*`, `caption_projection.*`, ...), so the published
checkpoints load without renaming (see `kinema.dit.convert.latte`). Attention runs through kinema's backend
dispatcher (`attention:` in the config). The sin-cos tables, the timestep sinusoid, adaLN-single modulation and
the block loop are the PixArt family's (`pos_embed`, `embeddings`, `layers`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange

from kinema.core import KinemaError

from .attention import ResolvedBackendMixin, run_attention
from .contract import ModelContract, VideoModel
from .loading import ConfigCheckedLoading
from .embeddings import timestep_embedding
from .flavours import flavours
from .layers import AttentionBackendMixin, PatchEmbed2D, layer_norm, modulation, run_blocks, t2i_modulate
from .pos_embed import sincos_1d, sincos_grid

# ----------------------------------------------------------------------------------------------------------------
# Fixed sin-cos position embeddings (the shared tables, at Latte's positions)
# ----------------------------------------------------------------------------------------------------------------


def sincos_2d(dim: int, grid_h: int, grid_w: int, base_size: int, interpolation_scale: float) -> torch.Tensor:
    """[grid_h * grid_w, dim] for tokens in row-major order; the first half encodes the w coordinate.

    Positions are rescaled so that a grid of `base_size` patches spans 0..base_size-1, then divided by the
    interpolation scale (1024^2 latents step by 0.5).
    """
    h = torch.arange(grid_h, dtype=torch.float64) / (grid_h / base_size) / interpolation_scale
    w = torch.arange(grid_w, dtype=torch.float64) / (grid_w / base_size) / interpolation_scale
    return sincos_grid(dim, h, w)


def temporal_interpolation_scale(video_length: int) -> int:
    # 5 latent frames (17 video frames through the 4x causal VAE) is the reference length: scale 1.
    return max(video_length // 5, 1)


def temporal_positions(num_frames: int, interpolation_scale: int) -> torch.Tensor:
    # divided in fp32, as upstream does (its table differs from one of float64 positions)
    return torch.arange(num_frames) / interpolation_scale


# ----------------------------------------------------------------------------------------------------------------
# Embedders
# ----------------------------------------------------------------------------------------------------------------

class PatchEmbed(PatchEmbed2D):
    """Conv2d patchify of single frames plus the 2-D sin-cos embedding (recomputed when the grid differs)."""

    def __init__(self, sample_size: int, patch_size: int, in_channels: int, embed_dim: int):
        super().__init__(patch_size, in_channels, embed_dim)
        self.base_size = sample_size // patch_size
        self.interpolation_scale = max(sample_size // 64, 1)
        pos = sincos_2d(embed_dim, self.base_size, self.base_size, self.base_size, self.interpolation_scale)
        self.register_buffer("pos_embed", pos[None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid_h, grid_w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        x = super().forward(x)  # (N, C, h, w) -> (N, h*w, C)
        if (grid_h, grid_w) == (self.base_size, self.base_size):
            pos = self.pos_embed
        else:
            pos = sincos_2d(x.shape[-1], grid_h, grid_w, self.base_size, self.interpolation_scale)[None]
        return x + pos.to(device=x.device, dtype=x.dtype)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class CombinedTimestepEmbedding(nn.Module):
    """Holds the timestep MLP under `emb.timestep_embedder` (PixArt's size conditioning is off in Latte)."""

    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TimestepEmbedding(256, dim)

    def forward(self, timestep):
        t = timestep_embedding(timestep, 256).to(self.timestep_embedder.linear_1.weight.dtype)
        return self.timestep_embedder(t)


class AdaLayerNormSingle(nn.Module):
    """adaLN-single: timestep -> (t6 [B, 6C] shared by every block, embedded timestep [B, C] for the final layer)."""

    def __init__(self, dim: int):
        super().__init__()
        self.emb = CombinedTimestepEmbedding(dim)
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, timestep):
        embedded = self.emb(timestep)
        return self.linear(self.silu(embedded)), embedded


class CaptionProjection(nn.Module):
    """T5 features -> hidden size. `y_embedding` (a learned null caption) is kept for weight compatibility only:
    Open-Sora-Plan 1.0 has no caption dropout, so nothing reads it."""

    def __init__(self, in_features: int, hidden_size: int, num_tokens: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_size)
        self.act_1 = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(hidden_size, hidden_size)
        self.register_buffer("y_embedding", torch.randn(num_tokens, in_features) / in_features**0.5)

    def forward(self, y):
        return self.linear_2(self.act_1(self.linear_1(y)))


# ----------------------------------------------------------------------------------------------------------------
# Attention, feed-forward, blocks
# ----------------------------------------------------------------------------------------------------------------

class Attention(ResolvedBackendMixin, nn.Module):
    """Multi-head attention with diffusers' parameter names; self-attention when `context` is None."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: Optional[int] = None,
                 bias: bool = True, dropout: float = 0.0, backend: str = "sdpa"):
        super().__init__()
        inner = heads * head_dim
        context_dim = dim if context_dim is None else context_dim
        self.heads = heads
        self.backend = backend  # resolved here, once: forward calls the backend directly
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=True), nn.Dropout(dropout)])

    def forward(self, x, context=None, mask=None):
        """x [B, Lq, C]; context [B, Lk, Ck]; mask bool [B, Lk] (True = attend)."""
        context = x if context is None else context
        q, k, v = (rearrange(p, "b l (h d) -> b h l d", h=self.heads)
                   for p in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = run_attention(self.backend_impl, q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])
        out = rearrange(out, "b h l d -> b l (h d)")
        return self.to_out[1](self.to_out[0](out))


class GELUProjection(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.ModuleList([GELUProjection(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class LatteBlock(nn.Module):
    """adaLN-single block: self-attention, then (spatial blocks) un-gated cross-attention to the caption as in
    PixArt, then the MLP. Spatial blocks attend within a frame, temporal blocks (bidirectional, unmasked) across
    the frames at one patch position."""

    def __init__(self, dim, heads, head_dim, eps=1e-6, dropout=0.0, backend="sdpa", cross_attention=False):
        super().__init__()
        self.cross_attention = cross_attention
        self.norm1 = layer_norm(dim, eps)
        self.attn1 = Attention(dim, heads, head_dim, dropout=dropout, backend=backend)
        self.norm2 = layer_norm(dim, eps)
        if cross_attention:
            self.attn2 = Attention(dim, heads, head_dim, context_dim=dim, dropout=dropout, backend=backend)
        self.ff = FeedForward(dim, dropout=dropout)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def forward(self, x, t6, context=None, context_mask=None):
        mod = modulation(self.scale_shift_table, t6)  # [N, 6, C]: one vector per token sequence
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        x = x + gate_msa * self.attn1(t2i_modulate(self.norm1(x), shift_msa, scale_msa))
        if self.cross_attention:
            x = x + self.attn2(x, context, context_mask)
        return x + gate_mlp * self.ff(t2i_modulate(self.norm2(x), shift_mlp, scale_mlp))


# ----------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------

# AttentionBackendMixin first: its set_attention_backend replaces ModelMixin's (diffusers' processors)
class LatteT2V(AttentionBackendMixin, ConfigCheckedLoading, ModelMixin, ConfigMixin, VideoModel):
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,  # latent height = width the 2-D position embedding is laid out for
        patch_size: int = 2,
        in_channels: int = 4,
        out_channels: int = 8,  # epsilon + learned variance
        num_layers: int = 28,  # spatial blocks; as many temporal blocks
        num_attention_heads: int = 16,
        attention_head_dim: int = 72,
        caption_channels: int = 4096,
        caption_num_tokens: int = 120,  # rows of the (unused) y_embedding buffer
        video_length: int = 5,  # latent video frames the temporal embedding is laid out for
        norm_eps: float = 1e-6,
        dropout: float = 0.0,
        attention: str = "sdpa",
    ):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.pos_embed = PatchEmbed(sample_size, patch_size, in_channels, dim)
        self.adaln_single = AdaLayerNormSingle(dim)
        self.caption_projection = CaptionProjection(caption_channels, dim, caption_num_tokens)
        block_args = (dim, num_attention_heads, attention_head_dim, norm_eps, dropout, attention)
        self.transformer_blocks = nn.ModuleList(
            [LatteBlock(*block_args, cross_attention=True) for _ in range(num_layers)])
        self.temporal_transformer_blocks = nn.ModuleList([LatteBlock(*block_args) for _ in range(num_layers)])
        self.norm_out = layer_norm(dim)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * out_channels)

        self.temp_interpolation_scale = temporal_interpolation_scale(video_length)
        temp_pos = sincos_1d(dim, temporal_positions(video_length, self.temp_interpolation_scale))
        self.register_buffer("temp_pos_embed", temp_pos[None], persistent=False)
        self.gradient_checkpointing = False

    def contract(self) -> ModelContract:
        c = self.config
        return ModelContract(latent_channels=c.in_channels, caption_channels=c.caption_channels,
                             caption_length=c.caption_num_tokens,
                             patch_size=(1, c.patch_size, c.patch_size), image_frames=True,
                             temporal_attention=True)

    # null_caption: None. Open-Sora-Plan 1.0 has no caption dropout; its sampler guides with the empty prompt.

    def temporal_pos_embed(self, num_frames: int) -> torch.Tensor:
        """[1, num_frames, C] with the configured interpolation scale (a prefix of the buffer when shorter)."""
        if num_frames <= self.temp_pos_embed.shape[1]:
            return self.temp_pos_embed[:, :num_frames]
        positions = temporal_positions(num_frames, self.temp_interpolation_scale)
        return sincos_1d(self.temp_pos_embed.shape[-1], positions)[None].to(self.temp_pos_embed.device)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        use_image_num: int = 0,
        enable_temporal_attentions: bool = True,
    ) -> torch.Tensor:
        """Predict noise and variance.

        x: (B, in_channels, F + N, H, W) latents: F video frames followed by N = use_image_num still images.
        timestep: (B,) diffusion steps (one per sample, shared by its video and images).
        y: caption features, (B, L, caption_channels), (B, 1, L, C) or (B, 1 + N, L, C) (row 0 is the video's
           caption, row 1 + j the caption of image j; a single row serves every frame).
        mask: caption validity (1 = token), (B, L) or (B, 1 + N, L) matching y.
        Returns (B, out_channels, F + N, H, W).

        Upstream honours use_image_num only in training mode; here it applies whenever it is passed. The
        temporal table is added at layer 0 with or without images, as in upstream's gradient-checkpointing
        path (the one every training script used; its other path skips it when images are present).
        """
        cfg = self.config
        batch, _, frames, height, width = x.shape
        video_frames = frames - use_image_num
        if not 0 <= use_image_num < frames:
            raise KinemaError(f"use_image_num={use_image_num} must leave at least one video frame of the "
                f"{frames} given")
        if height % cfg.patch_size or width % cfg.patch_size:
            raise KinemaError(f"latent size {height}x{width} is not a multiple of patch_size {cfg.patch_size}; "
                           "crop or pad the latents")
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1)
        timestep = timestep.expand(batch) if timestep.numel() == 1 else timestep
        if timestep.numel() != batch:
            raise KinemaError(f"{timestep.numel()} timesteps for a batch of {batch}; pass one per sample")
        grid_h, grid_w = height // cfg.patch_size, width // cfg.patch_size
        self.check_caption_given(y)
        dtype = self.pos_embed.proj.weight.dtype
        x, y = x.to(dtype), y.to(dtype)

        x = self.pos_embed(rearrange(x, "b c t h w -> (b t) c h w"))  # (B*T, S, C)
        tokens = x.shape[1]
        t6, embedded_timestep = self.adaln_single(timestep)
        context, context_mask = self._per_frame_captions(y, mask, batch, video_frames, use_image_num)
        t6_spatial = t6.repeat_interleave(frames, dim=0)
        t6_temporal = t6.repeat_interleave(tokens, dim=0)

        for i, (spatial, temporal) in enumerate(zip(self.transformer_blocks, self.temporal_transformer_blocks)):
            x = run_blocks(self, [spatial], x, t6_spatial, context, context_mask)
            if not enable_temporal_attentions:
                continue
            x = rearrange(x, "(b t) s c -> (b s) t c", b=batch)
            video, images = x[:, :video_frames], x[:, video_frames:]  # images bypass temporal mixing
            if i == 0:
                video = video + self.temporal_pos_embed(video_frames).to(video.dtype)
            video = run_blocks(self, [temporal], video, t6_temporal)
            x = rearrange(torch.cat([video, images], dim=1), "(b s) t c -> (b t) s c", b=batch)

        embedded_timestep = embedded_timestep.repeat_interleave(frames, dim=0)
        shift, scale = modulation(self.scale_shift_table, embedded_timestep).chunk(2, dim=1)
        x = self.proj_out(t2i_modulate(self.norm_out(x), shift, scale))
        p = cfg.patch_size
        return rearrange(x, "(b t) (h w) (p q c) -> b c t (h p) (w q)", b=batch, h=grid_h, w=grid_w, p=p, q=p)

    def _per_frame_captions(self, y, mask, batch, video_frames, image_num):
        """Caption tokens and validity mask laid out per frame: (B*(F+N), L, C), bool (B*(F+N), L) or None."""
        rows = 1 + image_num
        if y.dim() == 3:
            y = y[:, None]
        if y.shape[0] != batch or y.shape[1] not in (1, rows):
            raise KinemaError(f"captions of shape {tuple(y.shape)} do not fit {batch} samples with {image_num} images; "
                           f"expected (B, L, C), (B, 1, L, C) or (B, {rows}, L, C)")
        y = self.caption_projection(y).expand(batch, rows, -1, -1) if y.shape[1] == 1 else self.caption_projection(y)
        repeats = torch.tensor([video_frames] + [1] * image_num, device=y.device)
        context = rearrange(y.repeat_interleave(repeats, dim=1), "b t l c -> (b t) l c")
        if mask is None:
            return context, None
        mask = mask[:, None] if mask.dim() == 2 else mask
        if mask.shape[0] != batch or mask.shape[1] not in (1, rows) or mask.shape[-1] != y.shape[2]:
            raise KinemaError(f"caption mask of shape {tuple(mask.shape)} does not match captions {tuple(y.shape[:3])}")
        mask = mask.expand(batch, rows, -1).bool().repeat_interleave(repeats, dim=1).flatten(0, 1)
        # A caption with no valid token attends to all of them uniformly (upstream biases every key by -10000).
        return context, mask | ~mask.any(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------------------------------
# Flavours: LatteT2V-S/122, -B/122, -L/122, -XL/122 (patch 1 x 2 x 2)
# ----------------------------------------------------------------------------------------------------------------

def latte_size(depth: int, hidden_size: int, num_heads: int) -> dict:
    return {"num_layers": depth, "num_attention_heads": num_heads, "attention_head_dim": hidden_size // num_heads}


FLAVOURS = flavours(LatteT2V, size_kwargs=latte_size, patch_size=2, in_channels=4, out_channels=8,
                    caption_channels=4096)
LatteT2V_XL_122 = FLAVOURS.XL
