"""Feeding the images to a model: a seeded DataLoader and the mean/std normalisation.

The data sets stay in [0, 1]; the SciLT model normalises inside its ``forward`` with timm's mean/std (registered
buffers), so training code does not call ``normalize``. It is here for code that feeds a plain timm model.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset

from scilt_theory.data.lazy import FileStore, LazyImages

# Decoding image files in the main process starves a GPU; worker processes pay for their start-up only on big sets.
LAZY_WORKER_THRESHOLD = 2048
MAX_LOADER_WORKERS = 8


def default_num_workers(images: torch.Tensor | LazyImages) -> int:
    """0 for tensors and small or in-memory lazy sets; else min(8, CPUs − 1) workers that decode files."""
    if not isinstance(images, LazyImages) or not isinstance(images.store, FileStore) \
            or len(images) < LAZY_WORKER_THRESHOLD:
        return 0
    return max(0, min(MAX_LOADER_WORKERS, (os.cpu_count() or 1) - 1))


def make_loader(images: torch.Tensor | LazyImages, labels: torch.Tensor, batch_size: int, shuffle: bool,
                seed: int, drop_last: bool = False, num_workers: int | None = None) -> DataLoader:
    """A DataLoader over (images, labels) whose order depends only on ``seed``.

    It uses its own ``torch.Generator`` (no global random state), so two loaders made with the same arguments
    yield the same batches in the same order. ``images`` is a tensor or ``LazyImages``; worker processes
    (``num_workers``, default ``default_num_workers``: none for tensors) only decode, so they change no batch.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels differ in length: {images.shape[0]} and {labels.shape[0]}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size}")
    generator = torch.Generator().manual_seed(int(seed))
    workers = default_num_workers(images) if num_workers is None else int(num_workers)
    return DataLoader(TensorDataset(images, labels), batch_size=int(batch_size), shuffle=shuffle,  # type: ignore
                      generator=generator, drop_last=drop_last, num_workers=workers,
                      pin_memory=workers > 0 and torch.cuda.is_available(), persistent_workers=False)


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
