"""Reading and writing a diffusers-layout pipeline folder.

    model_index.json                {"_class_name": ..., "transformer": [library, class], ...}
    transformer/ vae/ text_encoder/ tokenizer/ scheduler/      each component's save_pretrained

Components are rebuilt with ``<class>.from_pretrained(folder/<name>)``. Only classes from kinema,
transformers, diffusers or a registered kinema plugin are imported, so a folder cannot make us
import arbitrary code.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from kinema.core import KinemaError

TRUSTED_LIBRARIES = ("kinema", "transformers", "diffusers")
INDEX = "model_index.json"

HOW_TO_PROVIDE = (
    "A pipeline folder holds model_index.json and transformer/, vae/, text_encoder/, tokenizer/, scheduler/. "
    "Assemble one from converted weights (`kinema dit convert ... -o DIR`) with "
    "KinemaVideoPipeline(transformer=..., vae=..., text_encoder=..., tokenizer=..., "
        "scheduler=...).save_pretrained(PATH), "
    "or write a tiny random one for trying the tools with `python -m kinema.sample.testing PATH` (it generates noise)."
)


def library_of(obj) -> tuple[str | None, str | None]:
    if obj is None:
        return None, None
    cls = type(obj)
    top = cls.__module__.split(".")[0]
    library = top if top in ("transformers", "diffusers") else cls.__module__
    return library, cls.__name__


def _registered_modules() -> set[str]:
    from kinema.core import get_registry

    modules = set()
    for kind in ("model", "vae", "scheduler", "text_encoder"):
        for entry in get_registry(kind).entries():
            modules.add(entry.module)  # known without importing every registered component
    return modules


def import_component_class(library: str, class_name: str, component: str):
    if library.split(".")[0] not in TRUSTED_LIBRARIES and library not in _registered_modules():
        raise KinemaError(f"{INDEX} names {library}.{class_name} for {component!r}; only classes from "
                       f"{', '.join(TRUSTED_LIBRARIES)} or installed kinema plugins are loaded")
    try:
        module = importlib.import_module(library)
    except ImportError as exc:
        raise KinemaError(f"{component!r} needs {library} ({exc}); install the package that provides it") from exc
    cls = getattr(module, class_name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise KinemaError(f"{library} has no loadable class {class_name!r} (needed for {component!r})")
    return cls


def read_index(path: Path) -> dict:
    index = path / INDEX
    if not index.is_file():
        where = "does not exist" if not path.exists() else f"has no {INDEX}"
        raise KinemaError(f"no pipeline at {str(path)!r}: the folder {where}. {HOW_TO_PROVIDE}")
    try:
        return json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise KinemaError(f"{index} is not valid JSON ({exc})") from exc


def load_component(path: Path, name: str, library: str | None, class_name: str | None, **kwargs):
    if library is None:
        return None
    cls = import_component_class(library, class_name, name)
    folder = path / name
    if not folder.is_dir():
        raise KinemaError(f"pipeline {str(path)!r} lists {name!r} but has no {name}/ folder. {HOW_TO_PROVIDE}")
    from diffusers.models.modeling_utils import ModelMixin

    if isinstance(cls, type) and issubclass(cls, ModelMixin):
        kwargs.setdefault("low_cpu_mem_usage", False)  # the fast path needs accelerate
    try:
        return cls.from_pretrained(str(folder), **kwargs)
    except (OSError, EnvironmentError, ValueError) as exc:
        raise KinemaError(f"cannot load {name!r} ({class_name}) from {str(folder)!r}: {exc}. "
                       f"Its weights may be missing or incomplete. {HOW_TO_PROVIDE}") from exc


def write_folder(path: Path, components: dict, extra: dict) -> None:
    """Write every component, then swap the finished folder into place (never a half-written pipeline)."""
    import diffusers

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        index = {"_class_name": "KinemaVideoPipeline", "_diffusers_version": diffusers.__version__, **extra}
        for name, obj in components.items():
            index[name] = list(library_of(obj))
            if obj is not None:
                obj.save_pretrained(str(tmp / name))
        (tmp / INDEX).write_text(json.dumps(index, indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
