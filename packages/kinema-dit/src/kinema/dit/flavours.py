"""Model flavours: every family in DiT's sizes, registered as ``<family>-<size>/<patch>`` (``STDiT-S/2``,
``STDiT2-B/2``, ``DiT-L/2``, ``PixArt-XL/2``, ``LatteT2V-S/122``, ...).

Imports nothing heavy: the plugin reads ``SIZES`` at discovery; the model modules build their
flavours with :func:`flavours`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Optional

# DiT's sizes (Peebles & Xie): name -> (depth, hidden size, attention heads); heads of 64 channels, XL's of 72.
# T is kinema's own tiny size (heads of 36), small enough to train on a CPU: the built-in default model's.
SIZES = {"T": (6, 144, 4), "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}


def dit_size(depth: int, hidden_size: int, num_heads: int) -> dict:
    """A size as the PixArt family's config fields."""
    return {"depth": depth, "hidden_size": hidden_size, "num_heads": num_heads}


class Flavour:
    """A model class with a flavour's defaults; called like the class, keyword arguments override them."""

    def __init__(self, cls: type, defaults: dict):
        self.cls, self.defaults = cls, defaults

    def __call__(self, **kwargs):
        return self.cls(**{**self.defaults, **kwargs})

    def __repr__(self) -> str:
        return f"Flavour({self.cls.__name__}, {self.defaults})"


def flavours(
    cls: type, sizes: Optional[dict] = None, size_kwargs: Callable[[int, int, int], dict] = dit_size, **defaults
) -> SimpleNamespace:
    """``cls`` in each of ``sizes`` (default :data:`SIZES`): a namespace with a :class:`Flavour` per size
    name (``.S``, ``.B``, ``.L``, ``.XL``). ``defaults`` are the family's own settings, the same for every size."""
    sizes = SIZES if sizes is None else sizes
    return SimpleNamespace(**{name: Flavour(cls, {**size_kwargs(*size), **defaults}) for name, size in sizes.items()})
