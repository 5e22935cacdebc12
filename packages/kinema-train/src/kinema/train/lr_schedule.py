"""Learning-rate factor per step: linear warm-up, constant, then an optional linear decay over the last
``decay_steps`` steps to ``min_lr_factor`` (warmup-stable-decay, as in torchtitan). Upstream Open-Sora
trains at a constant rate; the decay is what sharpens a short run at its end.

The factor is a function of the step and the current config only, so a resumed run may lengthen the
run (``optim.max_steps``) and place the decay at its new end.
"""

from __future__ import annotations


def lr_factor(step: int, warmup_steps: int, max_steps: int, decay_steps: int = 0, min_lr_factor: float = 0.0) -> float:
    """Factor applied to optim.lr for the optimizer step with 0-based index ``step``."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    if decay_steps:
        progress = (step + 1 - (max_steps - decay_steps)) / decay_steps
        factor *= 1.0 - (1.0 - min_lr_factor) * min(1.0, max(0.0, progress))
    return factor
