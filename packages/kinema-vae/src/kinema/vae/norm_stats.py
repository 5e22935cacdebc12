"""GroupNorm statistics shared across tiles (optional; beyond upstream).

With the released tiling every tile normalises with its own GroupNorm statistics, the main cause
of colour/brightness seams between tiles (Open-Sora-Plan issue #423). Here a tiled run is repeated:
the first pass records each GroupNorm's per-group sums over all tiles, later passes normalise every
tile with those pooled statistics (and refine them). Memory stays that of one tile; compute is
(passes + 1) times the tiled run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


class GroupNormStats:
    """Context manager: GroupNorm layers under `root` record sums and/or use frozen (mean, var)."""

    def __init__(self, root: nn.Module, frozen: dict | None = None, record: bool = True):
        self.norms = [m for m in root.modules() if isinstance(m, nn.GroupNorm)]
        self.frozen, self.record = frozen, record
        self.sums: dict[nn.GroupNorm, list[torch.Tensor]] = {}
        self._handles = []

    def _hook(self, module: nn.GroupNorm, inputs, output):
        x = inputs[0]
        b, g = x.shape[0], module.num_groups
        xr = x.reshape(b, g, -1)
        if self.record:
            s = [xr.sum(-1).detach().double(), xr.pow(2).sum(-1).detach().double(), xr.shape[-1]]
            if module in self.sums:
                acc = self.sums[module]
                acc[0], acc[1], acc[2] = acc[0] + s[0], acc[1] + s[1], acc[2] + s[2]
            else:
                self.sums[module] = s
        if self.frozen is None:
            return None
        mean, var = self.frozen[module]
        y = (xr - mean.to(x.dtype).unsqueeze(-1)) * torch.rsqrt(var.to(x.dtype).unsqueeze(-1) + module.eps)
        y = y.reshape(x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return y * module.weight.view(shape) + module.bias.view(shape) if module.affine else y

    def __enter__(self):
        self._handles = [m.register_forward_hook(self._hook) for m in self.norms]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        return False

    def statistics(self) -> dict:
        out = {}
        for module, (s1, s2, n) in self.sums.items():
            mean = s1 / n
            out[module] = (mean, (s2 / n - mean.pow(2)).clamp_min(0.0))
        return out


def run_with_shared_stats(root: nn.Module, run: Callable[[], torch.Tensor], passes: int) -> torch.Tensor:
    """run() (a tiled computation through `root`) with GroupNorm statistics pooled over all its tiles."""
    stats = None
    for _ in range(max(1, passes)):
        with GroupNormStats(root, frozen=stats, record=True) as rec:
            run()
        stats = rec.statistics()
    with GroupNormStats(root, frozen=stats, record=False):
        return run()

