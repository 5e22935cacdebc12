"""PatchGAN discriminators (pix2pix): 2-D per frame, and 3-D over the clip (Open-Sora-Plan 1.1)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class NLayerDiscriminator(nn.Module):
    """2-D PatchGAN applied to frames [N,C,H,W]: k4 s2 convs with BatchNorm, LeakyReLU 0.2."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class NLayerDiscriminator3D(nn.Module):
    """3-D PatchGAN over clips [B,C,T,H,W]: first conv k4 s2, middle convs stride (1,2,2), k4 everywhere.

    Time shrinks by the k4 convs: with n_layers=3 a clip needs at least 17 frames, with 2 at least 9.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = (1, 2, 2) if n < n_layers else 1
            layers += [nn.Conv3d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm3d(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv3d(ndf * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        self.n_layers = n_layers
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())
