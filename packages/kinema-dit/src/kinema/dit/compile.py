"""Regional compilation: ``torch.compile`` on each transformer block, not on the whole model.

Every block of a model has the same code, so after the first block compiles the others reuse
its graph: compiling takes seconds instead of minutes, and a graph break inside a block costs
that block a Python fallback without recompiling the model. Blocks are compiled in place
(``block.compile()``), so parameter names, state dicts, EMA, checkpoints and gradient
checkpointing (which calls the block) are unchanged.

Where compilation cannot run (a torch without Dynamo for this Python, no C++ compiler for
inductor's CPU kernels), :func:`compile_blocks` raises a one-line :class:`KinemaError` that names
the fix; it never falls back to eager silently, because a benchmark or a training run that asked
for compile and silently got eager would report the wrong thing.
"""

from __future__ import annotations

import os
import shutil

import torch
from torch import nn

from kinema.core import KinemaError


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a kinema model family (each family listed explicitly)."""
    from .latte import LatteT2V
    from .pixart import PixArtFamily

    if isinstance(model, PixArtFamily):  # PixArt, DiT, STDiT, STDiT2
        return list(model.blocks)
    if isinstance(model, LatteT2V):
        return [*model.transformer_blocks, *model.temporal_transformer_blocks]
    raise KinemaError(f"compile: {type(model).__name__} has no known transformer blocks; "
                      "supported: PixArt, DiT, STDiT, STDiT2, LatteT2V (turn compile off for other models)")


def check_compile_available(device: torch.device) -> None:
    """Raise a one-line KinemaError when ``torch.compile`` cannot run on ``device`` here."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise KinemaError(f"compile: torch {torch.__version__} has no torch.compile for this Python; "
                          "upgrade torch or turn compile off")
    if device.type == "cpu":  # inductor writes and builds C++ kernels for the CPU
        cxx = os.environ.get("CXX") or "g++"
        if shutil.which(cxx) is None and shutil.which("c++") is None:
            raise KinemaError(f"compile: no C++ compiler ({cxx!r}) for inductor on the CPU; "
                              "install one (apt-get install g++) or set CXX, or turn compile off")


def compile_blocks(model: nn.Module, **compile_kwargs) -> int:
    """Compile each transformer block of ``model`` in place; returns how many were compiled.

    Call it after the model is on its device, sharded and set to checkpoint gradients. Blocks
    already compiled are left alone, so calling it twice is harmless. ``compile_kwargs`` go to
    ``torch.compile`` (``mode``, ``dynamic``, ...).
    """
    blocks = transformer_blocks(model)
    param = next(model.parameters(), None)
    check_compile_available(param.device if param is not None else torch.device("cpu"))
    count = 0
    for block in blocks:
        if getattr(block, "_compiled_call_impl", None) is None:
            block.compile(**compile_kwargs)
            count += 1
    return count


def is_compiled(model: nn.Module) -> bool:
    """Whether every transformer block of ``model`` is compiled."""
    return all(getattr(b, "_compiled_call_impl", None) is not None for b in transformer_blocks(model))
