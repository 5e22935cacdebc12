"""Feature precompute: encode clips with a VAE and captions with a text encoder once, store shards.

Training from these shards skips both encoders (upstream's biggest per-step cost besides the DiT).
Any encoder works: ``encode_video(video [B, C, T, H, W] in [-1, 1]) -> latents [B, ...]`` and
``encode_text(list[str]) -> embeddings [B, L, D]`` or ``(embeddings, mask [B, L])``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from kinema.core.progress import progress_bar
from torch.utils.data import DataLoader

from .datasets import VideoTextDataset
from .shards import FeatureShardWriter


@torch.no_grad()
def precompute_features(
    table: pd.DataFrame,
    encode_video: Callable[[torch.Tensor], torch.Tensor],
    encode_text: Callable[[list[str]], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    output_dir: str | os.PathLike,
    num_frames: int = 16,
    image_size: tuple[int, int] = (256, 256),
    frame_interval: int = 1,
    batch_size: int = 8,
    max_count: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> list[Path]:
    """Write one feature sample per row: {latents, text_emb[, text_mask]} + caption, in table order."""
    dataset = VideoTextDataset(table, num_frames, frame_interval, image_size, seed=seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    bar = progress_bar(total=len(dataset), desc="precompute", unit="clip", enabled=progress)
    with FeatureShardWriter(output_dir, max_count) as writer, bar:
        for batch in loader:
            latents = encode_video(batch["video"])
            encoded = encode_text(list(batch["text"]))
            embeddings, mask = encoded if isinstance(encoded, tuple) else (encoded, None)
            for i, text in enumerate(batch["text"]):
                tensors = {"latents": latents[i], "text_emb": embeddings[i]}
                if mask is not None:
                    tensors["text_mask"] = mask[i]
                writer.write(tensors, text, fps=float(batch["fps"][i]), num_frames=int(batch["num_frames"][i]),
                             height=int(batch["height"][i]), width=int(batch["width"][i]))
            bar.update(len(batch["text"]))
    return sorted(Path(output_dir).glob("shard-*.tar"))
