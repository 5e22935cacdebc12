"""What an attention backend is: a kernel plus the capability flags used to choose it.

A backend computes softmax(q k^T * scale) v for q [B, H, Lq, D], k and v [B, H, Lk, D].
``attn_mask`` (optional) is boolean, broadcastable to [B, H, Lq, Lk], True = attend.
Backends register through the ``register_attention_backends`` hook; models name one in
their config (``attention: sdpa``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

AttentionFn = Callable[..., torch.Tensor]


def _always_available() -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    fn: AttentionFn  # fn(q, k, v, attn_mask=None, scale=None) -> [B, H, Lq, D]
    devices: frozenset[str] = frozenset({"cpu", "cuda"})
    dtypes: frozenset[torch.dtype] = frozenset({torch.float32, torch.float16, torch.bfloat16})
    supports_mask: bool = True
    supports_context_parallel: bool = False
    availability: Callable[[], tuple[bool, str]] = field(default=_always_available)
    description: str = ""

    def available(self) -> tuple[bool, str]:
        """(True, "") when the kernel can run in this process, else (False, why not)."""
        try:
            return self.availability()
        except Exception as exc:  # an availability probe must never crash discovery
            return False, f"{type(exc).__name__}: {exc}"

    def unsupported_reason(
        self, device: torch.device, dtype: torch.dtype, needs_mask: bool
    ) -> Optional[str]:
        """None when this backend can run this call, else a sentence saying why not."""
        ok, why = self.available()
        if not ok:
            return f"attention backend {self.name!r} is not available: {why}"
        if device.type not in self.devices:
            runs_on = ", ".join(sorted(self.devices))
            return f"attention backend {self.name!r} does not run on {device.type} (runs on {runs_on})"
        if dtype not in self.dtypes:
            names = ", ".join(sorted(str(d).removeprefix("torch.") for d in self.dtypes))
            return f"attention backend {self.name!r} does not support {dtype} (supports {names})"
        if needs_mask and not self.supports_mask:
            return f"attention backend {self.name!r} does not support attention masks"
        return None
