"""Feeding the in-memory tensors to a model: a seeded DataLoader and the mean/std normalisation.

The data sets stay in [0, 1]; the SciLT model normalises inside its ``forward`` with timm's mean/std (registered
buffers), so training code does not call ``normalize``. It is here for code that feeds a plain timm model.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader over (images, labels) whose order depends only on ``seed``.

    It uses its own ``torch.Generator`` (no global random state) and no worker processes, so two loaders made
    with the same arguments yield the same batches in the same order.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels differ in length: {images.shape[0]} and {labels.shape[0]}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size}")
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(TensorDataset(images, labels), batch_size=int(batch_size), shuffle=shuffle,
                      generator=generator, drop_last=drop_last)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(images − mean) / std per channel, for (N, C, H, W) or (C, H, W) images; returns a new tensor."""
    channels = images.shape[-3] if images.ndim >= 3 else -1
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).reshape(-1, 1, 1)
    if images.ndim not in (3, 4) or mean_t.shape[0] != channels or std_t.shape[0] != channels:
        raise ValueError(f"need (N, C, H, W) or (C, H, W) images and one mean and std per channel, got images "
                         f"{tuple(images.shape)}, {mean_t.shape[0]} means and {std_t.shape[0]} stds")
    if not bool((std_t > 0).all()):
        raise ValueError(f"every std must be positive, got {list(std)}")
    return (images - mean_t) / std_t
