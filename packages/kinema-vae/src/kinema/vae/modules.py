"""Building blocks of the causal video VAE (Open-Sora-Plan 1.0), layout [B, C, T, H, W].

Attribute names follow the LDM/CompVis VAE with `.conv` inside every CausalConv3d, so the
state dict matches the released checkpoint. Blocks are looked up by their upstream class
names (the release config stores them as strings), see MODULES at the bottom.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kinema.core import KinemaError


def _triple(v) -> tuple[int, int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


# ----------------------------------------------------------------------------- convolution


class CausalConv3d(nn.Module):
    """Conv3d that sees no future frame: frame 0 is replicated k_t-1 times on the left of time.

    Time padding is never zero padding, so output length == input length (stride 1) and an
    image (T=1) sees only itself. Spatial padding is ordinary zero padding.
    """

    def __init__(self, chan_in: int, chan_out: int, kernel_size=3, stride=1, padding=0, init_method: str = "random"):
        super().__init__()
        kernel, stride, padding = _triple(kernel_size), _triple(stride), _triple(padding)
        self.time_kernel_size = kernel[0]
        self.conv = nn.Conv3d(chan_in, chan_out, kernel, stride=stride, padding=(0, padding[1], padding[2]))
        self._init_weights(init_method)

    def _init_weights(self, method: str) -> None:
        w = self.conv.weight
        if method == "avg":  # identity spread evenly over the time taps (temporal smoothing)
            kt, c_out, c_in = w.shape[2], w.shape[0], w.shape[1]
            if w.shape[3:] != (1, 1) or c_out != c_in:
                raise ValueError("avg init needs a (k,1,1) kernel with chan_in == chan_out")
            eye = torch.eye(c_in).view(c_in, c_in, 1, 1, 1) / kt
            with torch.no_grad():
                w.copy_(eye.expand(-1, -1, kt, 1, 1))
        elif method == "zero":
            nn.init.zeros_(w)
        elif method != "random":
            raise ValueError(f"unknown init_method {method!r}; use random, avg or zero")
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_kernel_size > 1:
            first = x[:, :, :1].expand(-1, -1, self.time_kernel_size - 1, -1, -1)
            x = torch.cat([first, x], dim=2)
        return self.conv(x)


def Normalize(channels: int, num_groups: int = 32) -> nn.GroupNorm:  # noqa: N802 (upstream name)
    # Applied to the 5-D tensor, so statistics pool over T too: not strictly causal (as released).
    return nn.GroupNorm(num_groups=num_groups, num_channels=channels, eps=1e-6, affine=True)


# ----------------------------------------------------------------------------- residual block


class ResnetBlock3D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, norm_num_groups: int = 32):
        super().__init__()
        self.norm1 = Normalize(in_channels, norm_num_groups)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, padding=1)
        self.norm2 = Normalize(out_channels, norm_num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = CausalConv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


# ----------------------------------------------------------------------------- spatial resampling


class SpatialDownsample2x(nn.Module):
    """SD's asymmetric-pad stride-2 conv, per frame (kernel 1x3x3)."""

    def __init__(self, chan_in: int, chan_out: int):
        super().__init__()
        self.conv = CausalConv3d(chan_in, chan_out, (1, 3, 3), stride=(1, 2, 2), padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1, 0, 0)))


class SpatialUpsample2x(nn.Module):
    """Nearest x2 in H and W, then a 1x3x3 conv (SD's Upsample, per frame)."""

    def __init__(self, chan_in: int, chan_out: int):
        super().__init__()
        self.conv = CausalConv3d(chan_in, chan_out, (1, 3, 3), stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest"))


# ----------------------------------------------------------------------------- temporal resampling (no parameters)


class TimeDownsample2x(nn.Module):
    """Causal average pool over 3 frames with stride 2: T -> (T-1)//2 + 1, out[0] == x[0]."""

    def __init__(self, *_args, **_kwargs):
        super().__init__()
        self.conv = nn.AvgPool3d((3, 1, 1), stride=(2, 1, 1))  # named `conv` upstream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1), x], dim=2)
        return self.conv(x)


class TimeUpsample2x(nn.Module):
    """Keep frame 0, trilinear x2 on frames 1..T-1: T -> 2T-1 (an image passes through)."""

    def __init__(self, *_args, **_kwargs):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] <= 1:
            return x
        rest = F.interpolate(x[:, :, 1:], scale_factor=(2.0, 1.0, 1.0), mode="trilinear")
        return torch.cat([x[:, :, :1], rest], dim=2)


# ----------------------------------------------------------------------------- attention


class AttnBlock3D(nn.Module):
    """Single-head spatial self-attention with 1x1x1 q/k/v/proj_out convs and a residual.

    attn_impl="compat_v100" reproduces the released reshape (b,c,t,h,w) -> (b*t, c, h*w) done
    without moving t next to b: every pseudo-frame mixes channels and time steps. The released
    weights were trained with it. attn_impl="fixed" is true per-frame attention. Both agree at T=1.
    """

    def __init__(self, in_channels: int, attn_impl: str = "compat_v100", norm_num_groups: int = 32):
        super().__init__()
        if attn_impl not in ATTN_IMPLS:
            raise KinemaError(f"unknown attn_impl {attn_impl!r}; use one of {', '.join(ATTN_IMPLS)}")
        self.attn_impl = attn_impl
        self.norm = Normalize(in_channels, norm_num_groups)
        self.q = CausalConv3d(in_channels, in_channels, 1)
        self.k = CausalConv3d(in_channels, in_channels, 1)
        self.v = CausalConv3d(in_channels, in_channels, 1)
        self.proj_out = CausalConv3d(in_channels, in_channels, 1)

    def _to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if self.attn_impl == "fixed":
            x = x.permute(0, 2, 1, 3, 4)
        return x.reshape(b * t, c, h * w).transpose(1, 2).unsqueeze(1)  # [bt, 1, hw, c]

    def _from_tokens(self, o: torch.Tensor, shape) -> torch.Tensor:
        b, c, t, h, w = shape
        o = o.squeeze(1).transpose(1, 2)  # [bt, c, hw]
        if self.attn_impl == "fixed":
            return o.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        return o.reshape(b, c, t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (self._to_tokens(m(h)) for m in (self.q, self.k, self.v))
        o = F.scaled_dot_product_attention(q, k, v)  # scale c^-0.5, as upstream
        return x + self.proj_out(self._from_tokens(o, x.shape).contiguous())


ATTN_IMPLS = ("compat_v100", "fixed")


# ----------------------------------------------------------------------------- names used by configs

MODULES = {
    "CausalConv3d": CausalConv3d,
    "ResnetBlock3D": ResnetBlock3D,
    "SpatialDownsample2x": SpatialDownsample2x,
    "SpatialUpsample2x": SpatialUpsample2x,
    "TimeDownsample2x": TimeDownsample2x,
    "TimeUpsample2x": TimeUpsample2x,
    "AttnBlock3D": AttnBlock3D,
    "AttnBlock3DFix": AttnBlock3D,  # the corrected class: built with attn_impl="fixed"
}


def resolve_module(name: str, field: str) -> type[nn.Module]:
    """Config string (bare or dotted upstream path) -> module class; a clear error otherwise."""
    short = name.rsplit(".", 1)[-1]
    if short not in MODULES:
        raise KinemaError(
            f"config field {field!r} names module {name!r}, which kinema does not implement; "
            f"supported: {', '.join(sorted(MODULES))}"
        )
    return MODULES[short]
