"""Objects named by ``"module:attribute"`` and imported on first use.

Plugins register components and commands by such names, so discovering every installed plugin (what
``kinema --help`` does) imports no torch, diffusers, transformers or pandas; a component's module loads when
something looks it up. Packages re-export their public names the same way (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass

from .errors import KinemaError

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Lazy:
    """``Lazy("kinema.vae.causal_vae:CausalVideoVAE")``: the object, imported when ``load()`` is called."""

    target: str

    def __post_init__(self) -> None:
        if not _TARGET.match(self.target):
            raise KinemaError(f"lazy target {self.target!r} must look like 'package.module:attribute'")

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    def load(self):
        module_name, attribute = self.target.split(":", 1)
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for a package that re-exports ``name -> ".submodule"`` on first access."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)  # later accesses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
