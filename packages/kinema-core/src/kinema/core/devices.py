"""``--device`` text -> a ``torch.device`` that exists here, or one line saying why not and what to pass.

torch is imported inside the function: importing kinema.core stays cheap for the command line.
"""

from __future__ import annotations

from .errors import KinemaError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(text: str | None, field: str = "--device"):
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` (None: cuda when available, else cpu) -> ``torch.device``.

    Refuses a name torch does not know, a device type this torch build lacks, and a GPU index past the last
    visible GPU, each with a message naming ``field``."""
    import torch

    if text is None or not str(text).strip():
        return torch.device(default_device())
    text = str(text).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise KinemaError(f"{field} {text}: not a device name; use cpu, cuda, cuda:N or mps") from None
    if device.type not in DEVICE_TYPES:
        raise KinemaError(f"{field} {text}: kinema runs on {', '.join(DEVICE_TYPES)}; use --device cpu or cuda")
    if device.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise KinemaError(f"{field} {text}: this torch build has no CUDA; use {field} cpu or install a CUDA "
                              "build of torch")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise KinemaError(f"{field} {text}: no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES); "
                              f"use {field} cpu")
        if device.index is not None and device.index >= count:
            raise KinemaError(f"{field} {text}: there {'is' if count == 1 else 'are'} {count} visible GPU"
                              f"{'' if count == 1 else 's'}; use cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise KinemaError(f"{field} {text}: MPS (Apple GPU) is not available in this torch build or machine; use "
                          f"{field} cpu")
    if device.type == "cpu" and device.index not in (None, 0):
        raise KinemaError(f"{field} {text}: there is one CPU device; use {field} cpu")
    return device
