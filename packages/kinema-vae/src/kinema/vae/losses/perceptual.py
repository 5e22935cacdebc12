"""Perceptual loss plugins: LPIPS (VGG16 for training as upstream, AlexNet for the metric).

LPIPS needs pretrained weights that cannot be downloaded here, so the user supplies them:
  - the backbone: torchvision `vgg16` / `alexnet` state dict (keys `features.N.weight|bias`), and
  - the linear heads: the `lpips` package's v0.1 `vgg.pth` / `alex.pth` (keys `linK.model.1.weight`),
or one file holding both (what `LPIPS.save_weights` writes). Files load with safetensors or
`torch.load(weights_only=True)`. Without weights a PerceptualWeightsMissing error says what to pass.

Other perceptual losses register by name in PERCEPTUAL_LOSSES: a factory(weights=..., **kw) -> module
whose forward(x, y) on frames [N,3,H,W] in [-1,1] returns a per-frame loss [N,1,1,1].
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from kinema.core import KinemaError


class PerceptualWeightsMissing(KinemaError):
    """LPIPS was asked for without user-supplied weights."""


# ----------------------------------------------------------------------------- backbones (torchvision layouts)


def _vgg16_features() -> tuple[nn.Sequential, list[int], list[int]]:
    layers: list[nn.Module] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = v
    taps = [3, 8, 15, 22, 29]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    return nn.Sequential(*layers), taps, [64, 128, 256, 512, 512]


def _alexnet_features() -> tuple[nn.Sequential, list[int], list[int]]:
    layers = [
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    ]
    return nn.Sequential(*layers), [1, 4, 7, 9, 11], [64, 192, 384, 256, 256]


BACKBONES = {"vgg": _vgg16_features, "alex": _alexnet_features}


class NetLinLayer(nn.Module):
    def __init__(self, channels: int, dropout: bool = True):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout() if dropout else nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ----------------------------------------------------------------------------- LPIPS


class LPIPS(nn.Module):
    """LPIPS v0.1: unit-normalised backbone features, squared difference, learned 1x1 heads, spatial mean."""

    def __init__(self, net: str = "vgg", backbone: str | Path | None = None, linear: str | Path | None = None,
                 require_weights: bool = True):
        super().__init__()
        if net not in BACKBONES:
            raise KinemaError(f"unknown LPIPS backbone {net!r}; use one of {', '.join(BACKBONES)}")
        self.net = net
        self.features, self.taps, channels = BACKBONES[net]()
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", NetLinLayer(c))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.has_weights = False
        if backbone is not None or linear is not None:
            self.load_weights(backbone, linear)
        elif require_weights:
            raise PerceptualWeightsMissing(
                f"LPIPS ({net}) needs pretrained weights, which kinema never downloads: pass the torchvision "
                f"{'vgg16' if net == 'vgg' else 'alexnet'} state dict as `backbone` and the lpips v0.1 "
                f"{net}.pth as `linear` (CLI: --lpips-backbone FILE --lpips-linear FILE), or one combined file"
            )
        self.eval().requires_grad_(False)

    def load_weights(self, backbone: str | Path | None, linear: str | Path | None = None) -> None:
        state: dict[str, torch.Tensor] = {}
        for path in (backbone, linear):
            if path is not None:
                state.update(_read_weights(path))
        mapped = {}
        for key, value in state.items():
            key = key.removeprefix("net.").removeprefix("module.")
            if key.startswith(("features.", "lin")):
                mapped[key] = value
            elif key.startswith(("slice", "scaling_layer")):
                raise KinemaError(f"LPIPS weights in the lpips-package module layout ({key!r}) are not supported; "
                               "pass the torchvision backbone state dict and the lpips v0.1 linear-head file")
        missing = sorted(set(self.state_dict()) - set(mapped))
        if missing:
            raise PerceptualWeightsMissing(f"LPIPS ({self.net}) weights incomplete: {len(missing)} tensors missing, "
                                           f"e.g. {missing[:3]}; pass both the backbone and the linear-head file")
        self.load_state_dict(mapped, strict=False)
        self.has_weights = True

    def save_weights(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Frames [N,3,H,W] in [-1,1] -> distance [N,1,1,1]."""
        fx, fy = self._taps((x - self.shift) / self.scale), self._taps((y - self.shift) / self.scale)
        total = 0.0
        for k, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit(a) - _unit(b)).pow(2)
            total = total + getattr(self, f"lin{k}")(diff).mean(dim=(2, 3), keepdim=True)
        return total

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, last = [], self.taps[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
            if i == last:
                break
        return out


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PerceptualWeightsMissing(f"LPIPS weight file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise KinemaError(f"cannot read LPIPS weights {str(path)!r}: {type(exc).__name__}: {exc}") from None
    return obj.get("state_dict", obj) if isinstance(obj, dict) else obj


# ----------------------------------------------------------------------------- plugin table

PERCEPTUAL_LOSSES: dict[str, Callable[..., nn.Module]] = {
    "lpips-vgg": lambda backbone=None, linear=None, **kw: LPIPS("vgg", backbone, linear, **kw),
    "lpips-alex": lambda backbone=None, linear=None, **kw: LPIPS("alex", backbone, linear, **kw),
}


def build_perceptual_loss(name: str, **kwargs) -> nn.Module:
    if name not in PERCEPTUAL_LOSSES:
        raise KinemaError(f"unknown perceptual loss {name!r}; available: {', '.join(sorted(PERCEPTUAL_LOSSES))}")
    return PERCEPTUAL_LOSSES[name](**kwargs)
