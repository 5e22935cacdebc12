"""``from_pretrained`` for every kinema video model: diffusers' loader, with a config.json that does not
describe the weights reported in one line (which folder, which parameters, how many, what to fix) instead of
one line per parameter."""

from __future__ import annotations

from pathlib import Path

from kinema.core.weights import check_config_matches_weights


class ConfigCheckedLoading:
    """Listed before ``ModelMixin`` in a model family's bases, so its ``from_pretrained`` wraps diffusers'."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except (RuntimeError, ValueError):  # torch / diffusers size mismatches, among others
            folder = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
            if folder.is_dir():
                check_config_matches_weights(cls, folder)  # raises when the config is the cause
            raise
