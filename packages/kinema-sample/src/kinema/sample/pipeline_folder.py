"""Checking and swapping a diffusers-layout pipeline folder.

    model_index.json                {"_class_name": "KinemaVideoPipeline", "transformer": [module, class], ...,
                                     "defaults": {...}, "prediction_type": ..., "cfg_channel": ...}
    transformer/ vae/ text_encoder/ tokenizer/ scheduler/      each component's save_pretrained

diffusers rebuilds each component with ``<class>.from_pretrained(folder/<name>)``. Before that, the index is
checked: only classes from kinema, transformers, diffusers or a registered kinema plugin may be named, so a
folder cannot make us import arbitrary code. A folder is data: one that carries code (a ``.py`` file, an
``auto_map`` or ``custom_pipeline`` entry) or points outside itself (a link, a path option) is refused.
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
# keys with which transformers / diffusers load code named by a folder's JSON files
CODE_KEYS = ("auto_map", "custom_pipeline", "_custom_pipeline")
NEVER_CODE = "kinema never runs code from a model folder"

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
    check_folder_is_data(path, index)


def check_folder_is_data(path: Path, index: dict) -> None:
    """Refuse a folder that carries code or reaches outside itself, before any loader reads it.

    transformers runs a folder's ``auto_map`` code (asking on the terminal first), diffusers its ``.py`` files
    and ``custom_pipeline``; links could make a loader read any file of the machine.
    """
    root = path.resolve()
    class_name = index.get("_class_name")
    if not isinstance(class_name, str):
        raise KinemaError(f"{path / INDEX}: key '_class_name' is {class_name!r}, a code module to import; "
                          f"{NEVER_CODE}: it must name a pipeline class, e.g. \"KinemaVideoPipeline\"")
    for name in COMPONENTS:
        if (path / name).exists():
            check_inside(root, path / name, f"{INDEX} component {name!r}", str(path / name))
    for folder, dirs, files in os.walk(path):
        for entry in sorted(dirs + files):
            file = Path(folder) / entry
            if file.is_symlink():
                check_inside(root, file, "link", f"{file} -> {os.readlink(file)}")
            if file.suffix in (".py", ".pyc", ".pyw") or file.name == "__pycache__":
                raise KinemaError(f"{file} is Python code; {NEVER_CODE}: delete the file and name the component's "
                                  "class from kinema, transformers or diffusers in model_index.json")
            if file.suffix == ".json" and file.is_file():
                _check_json_names_no_code(file)


def _check_json_names_no_code(file: Path) -> None:
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # not settings; the component's own loader reports a broken file
    for key in CODE_KEYS:
        if isinstance(data, dict) and data.get(key):
            raise KinemaError(f"{file}: key {key!r} names code to run ({_short(data[key])}); {NEVER_CODE}: remove "
                              "the key and use a model class from kinema, transformers or diffusers")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_inside(root: Path, path: Path, key: str, value: str) -> Path:
    """``path`` with links resolved, refused unless it lies inside the folder ``root``."""
    resolved = path.resolve()
    # a Hugging Face cache snapshot (hub/models--x/snapshots/<rev>/) links each file to the repository's blobs/
    inside = [root] + ([root.parent.parent / "blobs"] if root.parent.name == "snapshots" else [])
    if not any(resolved == r or r in resolved.parents for r in inside):
        raise KinemaError(f"{key} {value!r} leads outside the model folder {str(root)!r} (to {str(resolved)!r}); "
                          "a model folder may only use files inside it: copy them in")
    return resolved


def import_components(index: dict) -> None:
    """Import the (checked) modules the index names: diffusers' loader only builds components from modules
    already imported, so that a folder cannot make it import code."""
    for name in COMPONENTS:
        library = (index.get(name) or [None])[0]
        if library is not None and library.startswith("kinema."):
            importlib.import_module(library)


def load_transformers_components(path: Path, index: dict, dtype=None, skip=()) -> dict:
    """The index's transformers components (text encoder, tokenizer), loaded here rather than by diffusers:
    its loader does not pass ``trust_remote_code`` on, and transformers then asks on the terminal whether to run
    a folder's code. Here it is always ``False``, and only local files are read."""
    components = {}
    for name in COMPONENTS:
        library, class_name = index.get(name) or (None, None)
        if library != "transformers" or name in skip:
            continue
        import torch
        import transformers

        cls = getattr(transformers, str(class_name), None)
        if not isinstance(cls, type) or not hasattr(cls, "from_pretrained"):
            raise KinemaError(f"{path / INDEX}: {name!r} names transformers.{class_name}, which transformers "
                              "does not have; name the class its save_pretrained wrote")
        options = {"trust_remote_code": False, "local_files_only": True}
        if issubclass(cls, torch.nn.Module):
            options["dtype"] = dtype.get(name, dtype.get("default")) if isinstance(dtype, dict) else dtype
        try:
            components[name] = cls.from_pretrained(str(path / name), **options)
        except (OSError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            raise KinemaError(f"cannot load {name}/ of the pipeline at {str(path)!r} as transformers.{class_name}: "
                              f"{detail}") from exc
    return components


def explain_weights_mismatch(path: Path, index: dict) -> None:
    """After a failed load: raise the one-line error if a model component's config.json does not describe its
    weights (torch would print a line per parameter)."""
    import torch
    from kinema.core.weights import check_config_matches_weights

    for name in COMPONENTS:
        library, class_name = index.get(name) or (None, None)
        if not library or not (library.startswith("kinema.") or library == "diffusers"):
            continue
        cls = getattr(importlib.import_module(library), str(class_name), None)
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and hasattr(cls, "load_config"):
            check_config_matches_weights(cls, path / name)


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
