"""Checking and swapping a diffusers-layout pipeline folder.

    model_index.json                {"_class_name": "KinemaVideoPipeline", "transformer": [module, class], ...,
                                     "defaults": {...}, "prediction_type": ..., "cfg_channel": ...}
    transformer/ vae/ text_encoder/ tokenizer/ scheduler/      each component's save_pretrained

diffusers rebuilds each component with ``<class>.from_pretrained(folder/<name>)``. Before that, the index is
checked: only classes from kinema, transformers, diffusers or a registered kinema plugin may be named, so a
folder cannot make us import arbitrary code.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

from kinema.core import KinemaError

TRUSTED_LIBRARIES = ("kinema", "transformers", "diffusers")
INDEX = "model_index.json"
COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")

HOW_TO_PROVIDE = (
    "A pipeline folder holds model_index.json and transformer/, scheduler/ (and vae/, text_encoder/, tokenizer/). "
    "Assemble one from converted weights (`kinema dit convert ... -o DIR`) with "
    "KinemaVideoPipeline(transformer=..., vae=..., text_encoder=..., tokenizer=..., "
    "scheduler=...).save_pretrained(PATH), "
    "or write a tiny random one for trying the tools with `python -m kinema.sample.testing PATH` (it generates noise)."
)


def _registered_modules() -> set[str]:
    from kinema.core import get_registry

    modules = set()
    for kind in ("model", "vae", "scheduler", "text_encoder"):
        for entry in get_registry(kind).entries():
            modules.add(entry.module)  # known without importing every registered component
    return modules


def read_index(path: Path) -> dict:
    index = path / INDEX
    if not index.is_file():
        where = "does not exist" if not path.exists() else f"has no {INDEX}"
        raise KinemaError(f"no pipeline at {str(path)!r}: the folder {where}. {HOW_TO_PROVIDE}")
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{index} is not valid JSON ({exc})") from exc


def check_index(path: Path, index: dict) -> None:
    """Every component names a trusted class and has its folder; the index is this version's format."""
    if "_kinema_text_encoder" in index or "_kinema_defaults" in index:
        raise KinemaError(f"{path / INDEX} is in the format before kinema 0.1's diffusers pipeline "
                          "(_kinema_defaults / _kinema_text_encoder); re-export it with this version")
    registered = None
    for name in COMPONENTS:
        library, class_name = index.get(name) or (None, None)
        if library is None:
            continue
        if library.split(".")[0] not in TRUSTED_LIBRARIES:
            registered = _registered_modules() if registered is None else registered
            if library not in registered:
                raise KinemaError(f"{INDEX} names {library}.{class_name} for {name!r}; only classes from "
                                  f"{', '.join(TRUSTED_LIBRARIES)} or installed kinema plugins are loaded")
        if not (path / name).is_dir():
            raise KinemaError(f"pipeline {str(path)!r} lists {name!r} but has no {name}/ folder. {HOW_TO_PROVIDE}")
    for name in ("transformer", "scheduler"):
        if not (index.get(name) or [None])[0]:
            raise KinemaError(f"pipeline {str(path)!r} has no {name}; {INDEX} must name one")


def import_components(index: dict) -> None:
    """Import the (checked) modules the index names: diffusers' loader only builds components from modules
    already imported, so that a folder cannot make it import code."""
    for name in COMPONENTS:
        library = (index.get(name) or [None])[0]
        if library is not None and library.startswith("kinema."):
            importlib.import_module(library)


def import_registered_components() -> None:
    """Import every installed kinema component module (for diffusers' generic ``DiffusionPipeline`` loader,
    which reads the folder before we can check it)."""
    for module in sorted(_registered_modules()):
        importlib.import_module(module)


def replace_folder(finished: Path, target: Path) -> None:
    """Swap a completely written folder into place; the old one is removed only after the swap."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(finished, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(finished, target)
