"""Attention step caching for sampling (Pyramid Attention Broadcast).

Attention outputs change little between neighbouring denoising steps in the middle of sampling, and how
little depends on the kind: cross-attention (to a fixed caption) least, temporal attention more, spatial
attention most. Inside a range of steps each attention module recomputes only every ``interval`` steps of
its kind and otherwise returns its output from the last step it computed; outside the range everything is
computed. The range is a fraction of the loop's steps, so a setting means the same for 30 or 100 steps.

The transformer is left as it is: the cache wraps the ``forward`` of the attention modules it finds (each
model family listed explicitly), and the pipeline's loop tells it which step it is. One stored output per
module and call: under classifier-free guidance the batch holds [uncond; cond], and both halves are reused
together.

    pipe.enable_attention_cache()                                   # every 3/3/6 steps over steps 5%..95%
    pipe.enable_attention_cache(spatial=2, temporal=3, cross=5, start=0.1, end=0.9)

The default (spatial 3, temporal 3, cross 6, steps 5%..95%) is the setting measured on the built-in model to skip
1.5x of its transformer FLOPs with prompt adherence within a point of uncached (``benchmarks/sample_cache.py``
measures it); wider intervals cost adherence.
    pipe(...); print(pipe.attention_cache.stats.summary())
    pipe.disable_attention_cache()
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from kinema.core import KinemaError

KINDS = ("spatial", "temporal", "cross")


@dataclass(frozen=True)
class AttentionCacheConfig:
    """``spatial`` / ``temporal`` / ``cross``: inside the range, recompute every that many steps (1: never
    reuse); ``start`` / ``end``: the range, as fractions of the loop's steps [start, end)."""

    spatial: int = 3
    temporal: int = 3
    cross: int = 6
    start: float = 0.05
    end: float = 0.95

    def __post_init__(self):
        for kind in KINDS:
            if int(getattr(self, kind)) < 1:
                raise KinemaError(f"attention cache: {kind} interval must be >= 1, got {getattr(self, kind)}")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise KinemaError(f"attention cache: need 0 <= start <= end <= 1, got start={self.start} end={self.end}")

    @classmethod
    def parse(cls, text: str | None) -> AttentionCacheConfig:
        """``"default"`` (or empty) or ``"spatial=2,temporal=3,cross=5,start=0.1,end=0.9"`` (any subset)."""
        if text is None or text.strip() in ("", "default", "on"):
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise KinemaError(f"attention cache: cannot read {item.strip()!r}; use key=value with keys "
                                  f"{', '.join(known)} (e.g. spatial=2,temporal=3,cross=5,start=0.1,end=0.9)")
            try:
                values[key] = int(value) if key in KINDS else float(value)
            except ValueError:
                raise KinemaError(f"attention cache: {key}={value.strip()!r} is not a number") from None
        return cls(**values)

    def steps_range(self, num_steps: int) -> tuple[int, int]:
        return round(self.start * num_steps), round(self.end * num_steps)

    def reuses(self, kind: str, step: int, num_steps: int) -> bool:
        """Whether ``kind`` reuses its stored output at ``step`` (given one is stored)."""
        lo, hi = self.steps_range(num_steps)
        return lo <= step < hi and (step - lo) % getattr(self, kind) != 0


@dataclass
class CacheStats:
    """Attention calls and their FLOPs (matmuls: projections and attention), computed and skipped, per kind."""

    calls: dict = field(default_factory=lambda: {k: [0, 0] for k in KINDS})  # [computed, skipped]
    flops: dict = field(default_factory=lambda: {k: [0, 0] for k in KINDS})

    def add(self, kind: str, flops: int, skipped: bool) -> None:
        self.calls[kind][skipped] += 1
        self.flops[kind][skipped] += flops

    def skipped_fraction(self, what: str = "flops") -> float:
        table = getattr(self, what)
        total = sum(c + s for c, s in table.values())
        return sum(s for _, s in table.values()) / total if total else 0.0

    def summary(self) -> str:
        parts = [f"{k} {s}/{c + s} calls skipped" for k, (c, s) in self.calls.items() if c + s]
        return "; ".join(parts) + f"; {self.skipped_fraction():.1%} of attention FLOPs skipped"


class AttentionCache:
    """Wraps the attention modules of ``transformer``; ``at_step(i, n)`` before each transformer call."""

    def __init__(self, transformer: nn.Module, config: AttentionCacheConfig | None = None):
        self.config = config or AttentionCacheConfig()
        self.modules = attention_modules(transformer)
        self.stats = CacheStats()
        self.step, self.num_steps = 0, 0
        self._stored: dict[int, tuple[torch.Size, torch.Tensor]] = {}
        for kind, module in self.modules:
            module.forward = self._wrap(kind, module, module.forward)

    def at_step(self, step: int, num_steps: int) -> None:
        """The loop is at ``step`` of ``num_steps``; step 0 starts a new loop (nothing stored is reused)."""
        if step == 0:
            self._stored.clear()
        self.step, self.num_steps = step, num_steps

    def remove(self) -> None:
        for _, module in self.modules:
            del module.forward  # back to the class's forward
        self._stored.clear()

    def _wrap(self, kind: str, module: nn.Module, forward):
        key = id(module)

        # the decision stays in Python under torch.compile; the attention it calls is still compiled
        @torch.compiler.disable(recursive=False)
        def cached_forward(x, *args, **kwargs):
            last = self.step + 1 >= self.num_steps  # nothing after the last step reads what it stores
            stored = self._stored.pop(key, None) if last else self._stored.get(key)
            flops = attention_flops(module, x, *args, **kwargs)
            if stored is not None and stored[0] == x.shape and self.config.reuses(kind, self.step, self.num_steps):
                self.stats.add(kind, flops, skipped=True)
                return stored[1]
            out = forward(x, *args, **kwargs)
            self.stats.add(kind, flops, skipped=False)
            if not last:
                self._stored[key] = (x.shape, out)
            return out

        return cached_forward


def attention_modules(transformer: nn.Module) -> list[tuple[str, nn.Module]]:
    """(kind, module) for every attention module of a kinema transformer, by family."""
    from kinema.dit import latte
    from kinema.dit.layers import Attention, MultiHeadCrossAttention
    from kinema.dit.pixart import PixArtBlock, PixArtFamily

    found = []
    if isinstance(transformer, PixArtFamily):  # PixArt, DiT, STDiT, STDiT2
        for block in transformer.modules():
            if isinstance(block, PixArtBlock):
                found += [("spatial", block.attn), ("cross", block.cross_attn)]
                if isinstance(getattr(block, "attn_temp", None), Attention):
                    found.append(("temporal", block.attn_temp))
        expected = {"spatial": Attention, "temporal": Attention, "cross": MultiHeadCrossAttention}
    elif isinstance(transformer, latte.LatteT2V):
        found = [("spatial", b.attn1) for b in transformer.transformer_blocks]
        found += [("cross", b.attn2) for b in transformer.transformer_blocks]
        found += [("temporal", b.attn1) for b in transformer.temporal_transformer_blocks]
        expected = dict.fromkeys(KINDS, latte.Attention)
    else:
        raise KinemaError(f"attention cache: {type(transformer).__name__} is not supported; "
                          "use STDiT, STDiT2, DiT, PixArt or LatteT2V, or leave the cache off")
    for kind, module in found:
        if not isinstance(module, expected[kind]):
            raise KinemaError(f"attention cache: {kind} attention is a {type(module).__name__}, "
                              f"expected {expected[kind].__name__}")
        if "forward" in vars(module):
            raise KinemaError("attention cache: the transformer's attention is already wrapped; "
                              "disable the other cache first")
    return found


def attention_flops(module: nn.Module, x: torch.Tensor, context: torch.Tensor | None = None, *_, **__) -> int:
    """Matmul FLOPs (2 per multiply-add) of one call: the q/k/v and output projections and the attention."""
    from kinema.dit import latte
    from kinema.dit.layers import MultiHeadCrossAttention

    b, n, c = x.shape
    if isinstance(module, latte.Attention):
        inner = module.to_q.out_features
        ctx = x if context is None else context
        lk, ck = ctx.shape[1], ctx.shape[2]
        return 2 * b * (n * c * inner + 2 * lk * ck * inner + 2 * n * lk * inner + n * inner * c)
    if isinstance(module, MultiHeadCrossAttention):
        lk = context.shape[1]
        return 2 * b * (n * c * c + 2 * lk * c * c + 2 * n * lk * c + n * c * c)
    return 2 * b * (3 * n * c * c + 2 * n * n * c + n * c * c)  # self-attention
