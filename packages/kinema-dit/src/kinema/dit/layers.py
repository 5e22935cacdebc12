"""Building blocks shared by the diffusion transformers (PixArt, DiT, STDiT, STDiT2; Latte in part).

Tokens travel through the blocks as [B, T, S, C] (T frames of S patches); spatial attention
runs over S, temporal attention over T, full attention over T*S. Submodule names (``qkv``,
``proj``, ``q_linear``, ``kv_linear``, ``fc1``, ``fc2``, ``scale_shift_table``, ``linear``)
are those of the upstream checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinema.core import KinemaError, get_registry

from .attention import ResolvedBackendMixin, resolve_backend, run_attention

# ---------------------------------------------------------------------------------------------
# small pieces
# ---------------------------------------------------------------------------------------------


def t2i_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def check_attention_backend(name: str) -> str:
    """Fail at construction (listing the registered names) rather than at the first forward."""
    resolve_backend(name)
    return name


# diffusers' attention backend names -> kinema's, where both name the same computation
DIFFUSERS_BACKENDS = {"native": "sdpa", "_native_math": "math", "flash": "flash_attn", "xformers": "xformers"}


class AttentionBackendMixin:
    """``use_attention_backend(name)``: switch every attention module of the model to another registered
    backend. diffusers' ``set_attention_backend`` / ``reset_attention_backend`` map onto it (diffusers' own
    versions address its attention processors, which these models do not have: they would do nothing), so
    models list this mixin before ``ModelMixin``."""

    def use_attention_backend(self, name: str) -> None:
        impl = resolve_backend(name)  # one lookup; every module keeps the resolved backend
        modules = [m for m in self.modules() if isinstance(m, ResolvedBackendMixin)]
        for module in modules:  # a module that refuses it leaves the whole model unchanged
            module.check_backend(name, impl)
        for module in modules:
            module.set_backend(name, impl)
        self.register_to_config(attention=name)

    def set_attention_backend(self, backend: str) -> None:
        """diffusers' API: its names for the computations kinema has (``native`` -> ``sdpa``, ...) or a
        kinema backend name."""
        registry = get_registry("attention_backend")
        if backend.lower() in DIFFUSERS_BACKENDS:
            name = DIFFUSERS_BACKENDS[backend.lower()]
        elif backend in registry:
            name = backend
        else:
            mapped = ", ".join(f"{d} (= {k})" for d, k in DIFFUSERS_BACKENDS.items())
            raise KinemaError(
                f"attention backend {backend!r} maps to no kinema backend; set_attention_backend accepts {mapped} "
                f"or a kinema name ({', '.join(registry.names())}); or call use_attention_backend(<kinema name>)"
            )
        self.use_attention_backend(name)

    def reset_attention_backend(self) -> None:
        self.use_attention_backend("sdpa")


class Mlp(nn.Module):
    """Linear-act-Linear (timm's Mlp without dropout)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int, act: Optional[nn.Module] = None):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act if act is not None else nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class RMSNorm(nn.Module):
    """LLaMA-style RMSNorm (statistics in fp32), used as QK-norm."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def layer_norm(hidden_size: int, eps: float = 1e-6) -> nn.LayerNorm:
    """The blocks' LayerNorm: no affine parameters (hence no state-dict keys)."""
    return nn.LayerNorm(hidden_size, elementwise_affine=False, eps=eps)


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------


def head_width(dim: int, num_heads: int) -> int:
    if dim % num_heads:
        raise ValueError(f"hidden size {dim} is not divisible by {num_heads} heads")
    return dim // num_heads


class Attention(ResolvedBackendMixin, nn.Module):
    """Multi-head self-attention over x [B, N, C], optional RMS QK-norm and rotary embedding.

    ``rope_before_norm`` reproduces the Open-Sora 1.1 order (rotate q/k, then RMS-normalise them);
    False gives the corrected order (normalise, then rotate).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        rope: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        rope_before_norm: bool = True,
        backend: str = "sdpa",
    ):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_width(dim, num_heads)
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope
        self.rope_before_norm = rope_before_norm
        self.backend = backend  # resolved here, once: forward calls the backend directly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        # heads counted from the shapes: with tensor-parallel linears a rank holds num_heads / tp of them
        qkv = self.qkv(x).view(B, N, 3, -1, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
        if self.rope is not None and self.rope_before_norm:
            q, k = self.rope(q), self.rope(k)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None and not self.rope_before_norm:
            q, k = self.rope(q), self.rope(k)
        out = run_attention(self.backend_impl, q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))


class MultiHeadCrossAttention(ResolvedBackendMixin, nn.Module):
    """Queries x [B, N, C] attend to caption tokens cond [B, L, C].

    ``cond_mask`` [B, L] (bool, True = valid token) restricts every sample to its own valid
    tokens, which is what the upstream packed block-diagonal attention computes.
    """

    def __init__(self, dim: int, num_heads: int, backend: str = "sdpa"):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_width(dim, num_heads)
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.backend = backend  # resolved here, once: forward calls the backend directly

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, _ = x.shape
        L = cond.shape[1]
        # local head count from the shapes, as in Attention
        q = self.q_linear(x).view(B, N, -1, self.head_dim).transpose(1, 2)
        kv = self.kv_linear(cond).view(B, L, 2, -1, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        attn_mask = None if cond_mask is None else cond_mask[:, None, None, :]
        out = run_attention(self.backend_impl, q, k, v, attn_mask=attn_mask, scale=self.head_dim**-0.5)
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))


def check_caption(y: torch.Tensor, batch_size: int, caption_channels: int) -> None:
    if y.ndim != 4 or y.shape[0] != batch_size or y.shape[1] != 1 or y.shape[3] != caption_channels:
        raise KinemaError(
            f"caption features must be [batch={batch_size}, 1, tokens, {caption_channels}] (T5 output), "
            f"got {tuple(y.shape)}"
        )


def caption_mask(mask: Optional[torch.Tensor], batch_size: int, num_tokens: int) -> Optional[torch.Tensor]:
    """T5 attention mask [b, L] (1 = valid) -> bool [B, L], rows repeated when B = k*b (e.g. CFG)."""
    if mask is None:
        return None
    if mask.ndim != 2 or mask.shape[1] != num_tokens:
        raise KinemaError(f"caption mask must be [batch, {num_tokens}] (1 = valid token), got {tuple(mask.shape)}")
    if mask.shape[0] != batch_size:
        if batch_size % mask.shape[0]:
            raise KinemaError(f"caption mask has {mask.shape[0]} rows for a batch of {batch_size}")
        mask = mask.repeat(batch_size // mask.shape[0], 1)
    mask = mask.bool()
    if not mask.any(dim=1).all():  # cross-attention over no token has no defined output
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        raise KinemaError(f"caption mask rows {empty} have no valid token: every caption needs at least one "
                          "(its EOS; the text encoder's mask of the empty prompt \"\" has it)")
    return mask


# ---------------------------------------------------------------------------------------------
# adaLN-single modulation
# ---------------------------------------------------------------------------------------------


def adaln_projection(hidden_size: int, chunks: int) -> nn.Sequential:
    """adaLN-single's shared projection (``t_block``): the timestep embedding t [B, C] -> t_mod [B, chunks*C]."""
    return nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, chunks * hidden_size))


def modulation(table: torch.Tensor, t_mod: torch.Tensor) -> torch.Tensor:
    """adaLN-single: a block's ``scale_shift_table`` [n, C] plus the shared t_mod [B, n*C] (or [B, C],
    broadcast) -> [B, n, C]."""
    return table[None] + t_mod.reshape(t_mod.shape[0], -1, table.shape[1])


def frame_modulation(
    table: torch.Tensor,
    t_mod: torch.Tensor,
    t0_mod: Optional[torch.Tensor] = None,
    x_mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, ...]:
    """:func:`modulation` split into n vectors shaped [B, T|1, 1, C] to broadcast over x [B, T, S, C].

    With ``x_mask`` [B, T] (True = frame being denoised) the frames marked False take their
    vectors from ``t0_mod`` (the same computation at timestep 0): frames given as conditioning.
    """
    mod = modulation(table, t_mod)  # [B, n, C]
    if x_mask is None:
        mod = mod[:, None]  # [B, 1, n, C]
    else:
        mod = torch.where(x_mask[:, :, None, None], mod[:, None], modulation(table, t0_mod)[:, None])  # [B, T, n, C]
    return mod.chunk(table.shape[0], dim=2)


def check_frame_mask(x_mask: Optional[torch.Tensor], batch_size: int, num_frames: int) -> Optional[torch.Tensor]:
    if x_mask is None:
        return None
    if tuple(x_mask.shape) != (batch_size, num_frames):
        raise KinemaError(
            f"x_mask must be [batch, frames] = [{batch_size}, {num_frames}] (True = frame to denoise), "
            f"got {tuple(x_mask.shape)}"
        )
    return x_mask.bool()


# ---------------------------------------------------------------------------------------------
# what a block takes, and the block loop
# ---------------------------------------------------------------------------------------------


def per_frame(axis: int = 1):
    """A :class:`BlockInputs` field indexed by frame along ``axis``, like x [B, T, S, C]."""
    return field(default=None, metadata={"frame_axis": axis})


@dataclass(frozen=True)
class BlockInputs:
    """Everything a PixArt-family block reads besides the tokens x [B, T, S, C]: the same object for
    every block of one forward. Fields declared ``per_frame`` carry a frame axis, so whoever splits
    x by frames (sequence parallelism) splits them alike with :meth:`map_frames`."""

    y: torch.Tensor  # caption tokens [B, L, C]
    y_mask: Optional[torch.Tensor]  # [B, L] bool, True = valid token; None = all valid
    t_mod: torch.Tensor  # adaLN-single [B, 6C] at the timestep
    t0_mod: Optional[torch.Tensor] = None  # ... at timestep 0, for the frames x_mask marks False
    t_tmp_mod: Optional[torch.Tensor] = None  # STDiT2's temporal adaLN [B, 3C]
    t0_tmp_mod: Optional[torch.Tensor] = None
    x_mask: Optional[torch.Tensor] = per_frame()  # [B, T], True = frame being denoised
    tpe: Optional[torch.Tensor] = per_frame()  # STDiT's temporal position table [1, T, C]

    def map_frames(self, fn: Callable[[torch.Tensor, int], torch.Tensor]) -> "BlockInputs":
        """A copy with ``fn(tensor, frame_axis)`` applied to every per-frame field that is set."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "frame_axis" in f.metadata and value is not None:
                changes[f.name] = fn(value, f.metadata["frame_axis"])
        return replace(self, **changes)


def run_blocks(model: nn.Module, blocks, x: torch.Tensor, *inputs) -> torch.Tensor:
    """x through ``blocks`` in order, each called as ``block(x, *inputs)``. After diffusers'
    ``model.enable_gradient_checkpointing()`` (and with grad enabled) each block's activations are
    recomputed in the backward pass instead of kept."""
    checkpoint = torch.is_grad_enabled() and model.gradient_checkpointing
    for block in blocks:
        x = model._gradient_checkpointing_func(block, x, *inputs) if checkpoint else block(x, *inputs)
    return x


def drop_path_rates(drop_path: float, depth: int) -> list[float]:
    """Stochastic depth rising linearly from 0 at the first block to ``drop_path`` at the last."""
    return [drop_path * i / max(depth - 1, 1) for i in range(depth)]


# ---------------------------------------------------------------------------------------------
# patch embedding and output head
# ---------------------------------------------------------------------------------------------


class PatchEmbed3D(nn.Module):
    """[B, C, T, H, W] -> [B, T'*H'*W', D]: right-pads W, H, T to patch multiples, then Conv3d."""

    def __init__(self, patch_size=(1, 2, 2), in_chans: int = 4, embed_dim: int = 1152):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pt, ph, pw = self.patch_size
        _, _, T, H, W = x.shape
        x = F.pad(x, (0, -W % pw, 0, -H % ph, 0, -T % pt))
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEmbed2D(nn.Module):
    """[B, C, H, W] -> [B, H'*W', D] with a Conv2d (image models; pads like PatchEmbed3D)."""

    def __init__(self, patch_size: int = 2, in_chans: int = 4, embed_dim: int = 1152):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        return self.proj(x).flatten(2).transpose(1, 2)


class T2IFinalLayer(nn.Module):
    """LayerNorm, modulation by the raw timestep embedding t (+ table [2, C]), Linear to patch pixels.

    Frames that ``x_mask`` marks given are modulated by t0 instead. ``legacy=True`` computes them as
    Open-Sora 1.1's released code does, on the already t-modulated tokens:
    mod_t0(LN(mod_t(LN(x)))); False gives mod_t0(LN(x)).
    """

    def __init__(self, hidden_size: int, num_patch: int, out_channels: int, legacy: bool = False):
        super().__init__()
        self.norm_final = layer_norm(hidden_size)
        self.linear = nn.Linear(hidden_size, num_patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)
        self.legacy = legacy

    def forward(self, x, t, t0=None, x_mask=None):
        if x_mask is None or not self.legacy:
            shift, scale = frame_modulation(self.scale_shift_table, t, t0, x_mask)
            return self.linear(t2i_modulate(self.norm_final(x), shift, scale))
        shift, scale = frame_modulation(self.scale_shift_table, t)
        shift0, scale0 = frame_modulation(self.scale_shift_table, t0)
        x = t2i_modulate(self.norm_final(x), shift, scale)
        x_zero = t2i_modulate(self.norm_final(x), shift0, scale0)  # normalises the modulated x again
        return self.linear(torch.where(x_mask[:, :, None, None], x, x_zero))


def unpatchify(x: torch.Tensor, grid: tuple[int, int, int], patch_size, out_channels: int) -> torch.Tensor:
    """[B, T, H*W, pt*ph*pw*C] -> [B, C, T*pt, H*ph, W*pw]."""
    T, H, W = grid
    pt, ph, pw = patch_size
    return rearrange(
        x, "B T (H W) (pt ph pw C) -> B C (T pt) (H ph) (W pw)", T=T, H=H, W=W, pt=pt, ph=ph, pw=pw, C=out_channels
    )


# ---------------------------------------------------------------------------------------------
# initialisation shared by the PixArt family
# ---------------------------------------------------------------------------------------------


def init_pixart_weights(model: nn.Module) -> None:
    """Xavier for every Linear (zero bias) and the patch conv (as a Linear); N(0, 0.02) for the
    timestep / caption / adaLN MLPs; zero for cross- and temporal-attention outputs and the final
    linear, so a fresh model starts from the identity residual path and predicts zero (and a
    spatial-temporal model from its image model)."""

    def basic(module):
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    model.apply(basic)
    w = model.x_embedder.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    for linear in (model.t_embedder.mlp[0], model.t_embedder.mlp[2], model.t_block[1]):
        nn.init.normal_(linear.weight, std=0.02)
    nn.init.normal_(model.y_embedder.y_proj.fc1.weight, std=0.02)
    nn.init.normal_(model.y_embedder.y_proj.fc2.weight, std=0.02)
    for block in model.blocks:
        zero_linear(block.cross_attn.proj)
        if hasattr(block, "attn_temp"):
            zero_linear(block.attn_temp.proj)
    zero_linear(model.final_layer.linear)


def zero_linear(linear: nn.Linear) -> None:
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
