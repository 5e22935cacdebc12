"""DiT with full 3D attention: the comparison baseline for STDiT (``DiT-XL/2``).

STDiT built with PixArt's block (adaLN-single, cross-attention to T5 captions): a single
self-attention over all T*S tokens of the clip instead of spatial then temporal attention, so
attention cost grows with (T*S)^2 instead of T*S^2 + S*T^2. Everything else is STDiT's: the patch
embedding, the fixed 2D spatial and 1D temporal sincos tables, the timestep and caption embedders,
the t = 0 modulation of given frames, the final layer. With no attention along frames alone, the
temporal table is added to the tokens once, after patch embedding.

    x [B, C, T, H, W] --patch + 3D sincos--> [B, T, S, C] --N x PixArtBlock over T*S--> [B, 2C, T, H, W]
"""

from __future__ import annotations

from dataclasses import replace

import torch
# diffusers' pipeline loader finds a component's loading methods through the base classes its module
# names (ModelMixin), so a pipeline folder holding this model loads
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

from .contract import ModelContract
from .flavours import flavours
from .layers import BlockInputs, run_blocks
from .pixart import PixArtBlock
from .stdit import STDiT


class DiT(STDiT):
    """forward(x [B, C, T, H, W], timestep [B], y [B, 1, L, caption_channels], mask [B, L],
    x_mask [B, T]) -> [B, 2C, T, H, W] fp32; ``input_size`` (T, H, W) fixes the position tables."""

    block_type = PixArtBlock

    def contract(self) -> ModelContract:
        return replace(super().contract(), temporal_attention=False)

    def apply_blocks(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        # no block attends along frames alone: the temporal table goes onto the tokens, once
        x = x + self.pos_embed_temporal[:, :, None]
        return run_blocks(self, self.blocks, x, inputs)


# ---------------------------------------------------------------------------------------------
# flavours: DiT-S/2, -B/2, -L/2, -XL/2, for 16-frame latents by default
# ---------------------------------------------------------------------------------------------

FLAVOURS = flavours(DiT, patch_size=(1, 2, 2), input_size=(16, 32, 32))
DiT_XL_2 = FLAVOURS.XL
