"""Attention backends shipped with kinema-dit, and how attention modules hold (resolved once) and run them.

``sdpa`` (default) is torch's scaled_dot_product_attention; ``math`` is the explicit
reference (softmax in fp32, as the upstream models compute it); ``flash_attn`` and
``xformers`` wrap the CUDA-only kernels and report themselves unavailable elsewhere.
All take q [B, H, Lq, D], k/v [B, H, Lk, D] and a boolean mask (True = attend).
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import torch
import torch.nn.functional as F

from kinema.core import AttentionBackend, KinemaError, get_registry


def sdpa_attention(q, k, v, attn_mask: Optional[torch.Tensor] = None, scale: Optional[float] = None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def math_attention(q, k, v, attn_mask: Optional[torch.Tensor] = None, scale: Optional[float] = None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)
    scores = scores.float()  # softmax in fp32 whatever the compute dtype
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.softmax(dim=-1).to(v.dtype)
    return weights @ v


def flash_attn_attention(q, k, v, attn_mask=None, scale=None):
    from flash_attn import flash_attn_func  # CUDA only; checked by availability

    if attn_mask is not None:
        raise KinemaError("flash_attn does not take attention masks; use sdpa for masked attention")
    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale)
    return out.transpose(1, 2)


def xformers_attention(q, k, v, attn_mask=None, scale=None):
    import xformers.ops as xops  # CUDA only; checked by availability

    bias = None
    if attn_mask is not None:
        bias = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~attn_mask, float("-inf")).expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    out = xops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, scale=scale
    )
    return out.transpose(1, 2)


def _cuda_module_available(module: str, pip_name: str) -> tuple[bool, str]:
    if importlib.util.find_spec(module) is None:
        return False, f"{pip_name} is not installed (pip install {pip_name}; needs a CUDA build of torch)"
    if not torch.cuda.is_available():
        return False, f"{pip_name} needs a CUDA device and none is visible"
    return True, ""


HALF = frozenset({torch.float16, torch.bfloat16})
ALL_FLOATS = frozenset({torch.float32, torch.float16, torch.bfloat16})

SDPA = AttentionBackend(
    "sdpa", sdpa_attention, supports_context_parallel=True,
    description="torch.nn.functional.scaled_dot_product_attention (picks flash/mem-efficient/math kernels itself)",
)
MATH = AttentionBackend(
    "math", math_attention, supports_context_parallel=True,
    description="explicit softmax(q k^T) v with the softmax in fp32: the reference",
)
FLASH_ATTN = AttentionBackend(
    "flash_attn", flash_attn_attention, devices=frozenset({"cuda"}), dtypes=HALF,
    supports_mask=False, supports_context_parallel=True,
    availability=lambda: _cuda_module_available("flash_attn", "flash-attn"),
    description="FlashAttention-2 (CUDA, fp16/bf16, no masks)",
)
XFORMERS = AttentionBackend(
    "xformers", xformers_attention, devices=frozenset({"cuda"}), dtypes=ALL_FLOATS,
    availability=lambda: _cuda_module_available("xformers", "xformers"),
    description="xformers memory_efficient_attention (CUDA)",
)


def resolve_backend(name: str) -> AttentionBackend:
    """The backend registered as ``name``; unknown names list the available ones."""
    return get_registry("attention_backend").get(name)


def run_attention(
    impl: AttentionBackend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Run a resolved backend, after checking it can run this call (device, dtype, mask)."""
    reason = impl.unsupported_reason(q.device, q.dtype, attn_mask is not None)
    if reason is not None:
        raise KinemaError(f"{reason}; switch with model.use_attention_backend('sdpa') or set attention: sdpa "
                          "in the model config")
    return impl.fn(q, k, v, attn_mask=attn_mask, scale=scale)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    backend: str = "sdpa",
    attn_mask: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Run attention with the named backend (one registry lookup per call: models hold theirs resolved)."""
    return run_attention(resolve_backend(backend), q, k, v, attn_mask=attn_mask, scale=scale)


class ResolvedBackendMixin:
    """For attention modules: the backend is looked up once, when set, and kept on the module, so a
    forward touches no registry. ``backend`` reads and sets it by its registered name."""

    @property
    def backend(self) -> str:
        return self._backend_name

    @backend.setter
    def backend(self, name: str) -> None:
        self.set_backend(name)

    def check_backend(self, name: str, impl: AttentionBackend) -> None:
        """Raise if this module cannot use ``impl``; models check every module before switching any."""

    def set_backend(self, name: str, impl: Optional[AttentionBackend] = None) -> None:
        """Use the backend registered as ``name`` (``impl``: that backend, already resolved)."""
        impl = resolve_backend(name) if impl is None else impl
        self.check_backend(name, impl)
        self.backend_impl, self._backend_name = impl, name
