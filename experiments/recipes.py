"""Training recipes shared by the commands, as command-line arguments of ``python -m experiments.train``.

CPU_RECIPE is what ``make demo`` and ``python -m experiments.compare`` train by default: a 6-block ViT-Tiny at
32 px / patch 4, trained in full from random initialisation (no pretrained weights can be downloaded here, and
adapters on a frozen random backbone learn little), AdamW because the backbone trains from scratch.
"""

from __future__ import annotations

CPU_RECIPE = [
    "--arch", "vit_tiny_patch16_224", "--img-size", "32", "--patch-size", "4", "--depth", "6",
    "--adapter", "full", "--epochs", "15", "--batch-size", "64",
    "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay", "0.05", "--warmup-epochs", "1",
]
