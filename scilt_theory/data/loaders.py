"""Feeding the images to a model: a seeded DataLoader and the mean/std normalisation.

The data sets stay in [0, 1]; the SciLT model normalises inside its ``forward`` with timm's mean/std (registered
buffers), so training code does not call ``normalize``. It is here for code that feeds a plain timm model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from scilt_theory.data.lazy import FileStore, LazyImages


class _BatchDataset(Dataset):
    """(images, labels) fetched a whole batch at a time (``__getitems__``): one gather per batch instead of one
    per image, and an empty index list (an empty shard) gives empty tensors instead of a collate error."""

    def __init__(self, images: torch.Tensor | LazyImages, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[idx]
        if isinstance(images, LazyImages):  # a lazy subset: decode it here (in the worker, when there are any)
            images = images.load()
        return images, self.labels[idx]


def _keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn for :class:`_BatchDataset`: the batch is already stacked (module level: picklable)."""
    return batch


class ShardBatchSampler(Sampler[list[int]]):
    """Rank ``rank``'s contiguous part of every batch of ``batch_sampler`` (``torch.tensor_split`` rule: parts
    differ by at most one index, a global batch smaller than ``world_size`` leaves some parts empty).

    The wrapped sampler is iterated in full on every rank, so every rank consumes the seeded generator exactly
    as a one-process loader does and sees the same global batches; ``len`` is the number of global batches.
    """

    def __init__(self, batch_sampler: Sampler[list[int]], rank: int, world_size: int) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank} and world_size {world_size}")
        self.batch_sampler, self.rank, self.world_size = batch_sampler, int(rank), int(world_size)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batch_sampler:
            start, stop = shard_range(len(batch), self.rank, self.world_size)
            yield list(batch[start:stop])

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]


def shard_range(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of part ``rank`` when ``count`` items are cut into ``world_size`` contiguous parts whose
    sizes differ by at most one (the first ``count % world_size`` parts get the extra item, as
    ``torch.tensor_split``)."""
    base, extra = divmod(int(count), int(world_size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)

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
                seed: int, drop_last: bool = False, *, num_workers: int | None = None, pin_memory: bool = False,
                shard: tuple[int, int] | None = None) -> DataLoader:
    """A DataLoader over (images, labels) whose order depends only on ``seed``.

    It uses its own ``torch.Generator`` (no global random state), so two loaders made with the same arguments
    yield the same batches in the same order. ``images`` is a tensor or ``LazyImages`` (decoded per batch).
    ``num_workers`` worker processes (None: :func:`default_num_workers`, none for tensors; re-spawned each epoch, not
    persistent: a persistent loader would draw the workers' base seed from the generator once instead of once
    per epoch and so change the order) and ``pin_memory`` (page-locked batches for asynchronous host-to-GPU
    copies) do not change the batches: the sampler runs in the main process, and torch seeds every worker
    (torch, random, numpy) from a base seed drawn from the same seeded generator.

    ``shard=(rank, world_size)`` yields only rank's contiguous part of each global batch of ``batch_size``
    (see :class:`ShardBatchSampler`): the global batches are those of the one-process loader.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images and labels differ in length: {images.shape[0]} and {labels.shape[0]}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size}")
    if num_workers is None:
        num_workers = default_num_workers(images)
    if int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be a whole number of at least 0, got {num_workers}")
    generator = torch.Generator().manual_seed(int(seed))
    dataset = _BatchDataset(images, labels)
    # The same sampler chain DataLoader(shuffle=...) builds, so the generator is consumed identically.
    sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches: Sampler[list[int]] = BatchSampler(sampler, int(batch_size), drop_last)
    if shard is not None:
        batches = ShardBatchSampler(batches, *shard)
    return DataLoader(dataset, batch_sampler=batches, generator=generator, collate_fn=_keep_batch,
                      num_workers=int(num_workers), pin_memory=bool(pin_memory))


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
