"""kinema.dit: STDiT, STDiT2, DiT, PixArt-α and Latte diffusion transformers, attention backends, and loaders
for the upstream checkpoints (``kinema.dit.convert``). Import the model modules directly
(``from kinema.dit.stdit2 import STDiT2``); this package itself imports nothing heavy.
"""
