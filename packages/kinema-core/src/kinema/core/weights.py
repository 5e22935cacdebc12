"""Saying in one line that a model folder's config.json does not describe its weights.

torch and diffusers report a config/weights disagreement as one line per parameter (hundreds of them for a
wrong ``hidden_size``) with no hint of the cause; loaders call these helpers when loading fails to say which
folder, which parameters, how many, and what to fix.
"""

from __future__ import annotations

from pathlib import Path

from .errors import KinemaError

FIX = ("the config.json does not describe these weights; re-export the model, or fix hidden_size / depth / "
       "num_heads / patch_size / channels in config.json to the values the weights were trained with")


def _shape(shape) -> str:
    return "[" + ", ".join(str(int(n)) for n in shape) + "]"


def file_shapes(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the weights in ``folder``, read from file headers (no tensor is loaded for
    safetensors; ``.bin`` files are memory-mapped, without unpickling code)."""
    import torch

    folder = Path(folder)
    shapes: dict[str, tuple[int, ...]] = {}
    files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        return shapes
    for file in sorted(folder.glob("*.bin")):
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        shapes.update({k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)})
    return shapes


def mismatch_error(folder: str | Path, expected: dict[str, tuple[int, ...]],
                   found: dict[str, tuple[int, ...]], shown: int = 3) -> KinemaError | None:
    """The one-line error for parameters whose shape in the files differs from the model's; None if none do."""
    differing = [(k, tuple(found[k]), tuple(shape)) for k, shape in expected.items()
                 if k in found and tuple(found[k]) != tuple(shape)]
    if not differing:
        return None
    examples = "; ".join(f"{k}: weights {_shape(f)}, config {_shape(e)}" for k, f, e in differing[:shown])
    more = f" and {len(differing) - shown} more" if len(differing) > shown else ""
    return KinemaError(f"{str(folder)!r}: {len(differing)} parameters differ in shape between config.json and the "
                       f"weights ({examples}{more}); {FIX}")


def expected_shapes(model_cls, folder: str | Path) -> dict[str, tuple[int, ...]] | None:
    """Parameter shapes of ``model_cls`` built from ``folder``'s config.json, on the meta device (no memory, no
    init); None when it cannot be built that way."""
    import torch

    try:
        with torch.device("meta"):
            model = model_cls.from_config(model_cls.load_config(str(folder)))
    except Exception:  # a config that cannot build the model is reported by the loader's own error
        return None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_config_matches_weights(model_cls, folder: str | Path) -> None:
    """Raise the one-line error if ``folder``'s config.json builds a ``model_cls`` whose shapes differ from the
    weights' (a diffusers ``ConfigMixin`` class: ``load_config`` + ``from_config``)."""
    expected = expected_shapes(model_cls, folder)
    if expected is None:
        return
    error = mismatch_error(folder, expected, file_shapes(folder))
    if error is not None:
        raise error
