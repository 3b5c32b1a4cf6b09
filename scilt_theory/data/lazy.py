"""Image collections that decode on access, so real data sets (NIH ChestX-ray14: 112 120 images) need no RAM.

``LazyImages`` behaves like the float32 (N, 3, H, W) tensor the embedded data sets hold, for everything the
pipeline does with images: ``.shape``, ``.dtype``, ``.ndim``, ``.size(dim)``, ``len()``, ``x[i]`` → (3, H, W)
tensor, ``x[a:b]`` → (n, 3, H, W) tensor (decoded by a small thread pool), ``x[index]`` with a LongTensor /
integer array / list / boolean mask → a lazy subset. It pickles (DataLoader workers get a copy). Values are
checked at decode time (every store returns [0, 1]), so building a data set never reads every file.

A *store* knows how to make item i: ``FileStore`` (image files), ``ArrayStore`` (a MedMNIST .npz array, read once
per process) and ``GeneratedStore`` (seeded synthetic pixels, for ``nih-profile``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from scilt_theory.data.images import Preprocess, array_to_tensor, load_image

_POOL: ThreadPoolExecutor | None = None
_POOL_PID: int | None = None
_POOL_LOCK = threading.Lock()
_ARRAY_LOCK = threading.Lock()


def _thread_pool() -> ThreadPoolExecutor:
    """One decoding pool per process (re-made after a fork: a child cannot use its parent's threads)."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)),
                                       thread_name_prefix="scilt-decode")
            _POOL_PID = os.getpid()
        return _POOL


class ImageStore:
    """Base class: ``len(store)`` items, ``store.load(i)`` → (3, S, S) float32 in [0, 1], ``describe(i)``."""

    image_size: int

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def describe(self, i: int) -> str:
        return f"item {i}"

    def identity(self, i: int) -> str:
        """What makes item i this item, independent of where the data lie (for the split fingerprint)."""
        return str(i)


class FileStore(ImageStore):
    """Image files, decoded with Pillow and resized by ``preprocess`` (see ``scilt_theory.data.images``)."""

    def __init__(self, paths: Sequence[str], preprocess: Preprocess, root: str | None = None) -> None:
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.preprocess = preprocess
        self.image_size = preprocess.image_size
        self.root = None if root is None else os.path.abspath(str(root))

    def identity(self, i: int) -> str:
        path = os.path.abspath(self.paths[i])
        return os.path.relpath(path, self.root) if self.root else os.path.basename(path)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> torch.Tensor:
        return load_image(self.paths[i], self.preprocess)

    def describe(self, i: int) -> str:
        return str(self.paths[i])


class ArrayStore(ImageStore):
    """Images stored as arrays inside an .npz file, (N, H, W) or (N, H, W, C) uint8/uint16, read on first use.

    ``parts`` lists (key, length) in order: item i is the i-th image of their concatenation (e.g. MedMNIST's
    ``train_images`` followed by ``test_images``).
    """

    def __init__(self, path: str, parts: Sequence[tuple[str, int]], preprocess: Preprocess) -> None:
        self.path, self.preprocess = str(path), preprocess
        self.keys = [str(key) for key, _ in parts]
        self.offsets = np.cumsum([0] + [int(n) for _, n in parts])
        self.image_size = preprocess.image_size
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}  # workers re-read the file instead of copying the arrays

    def _locate(self, i: int) -> tuple[str, int]:
        part = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.keys[part], int(i - self.offsets[part])

    def _array(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            with _ARRAY_LOCK:  # decoding threads share one copy
                if key not in self._arrays:
                    with np.load(self.path) as archive:
                        self._arrays[key] = archive[key]
        return self._arrays[key]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def load(self, i: int) -> torch.Tensor:
        key, j = self._locate(i)
        return self.preprocess(array_to_tensor(self._array(key)[j], self.describe(i)))

    def describe(self, i: int) -> str:
        key, j = self._locate(i)
        return f"{self.path}[{key}][{j}]"

    def identity(self, i: int) -> str:
        key, j = self._locate(i)
        return f"{os.path.basename(self.path)}:{key}:{j}"


class GeneratedStore(ImageStore):
    """Seeded synthetic grey images: template of the item's class plus Gaussian noise, made on access.

    Item i is ``clip(template[label_i] + noise_std · N(0, 1), 0, 1)`` with the noise drawn from a generator seeded by
    ``(seed, i)``, so every item is the same on every access, in every process.
    """

    def __init__(self, labels: np.ndarray, templates: torch.Tensor, seed: int, noise_std: float) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.templates = templates  # (K, 1, S, S)
        self.seed, self.noise_std = int(seed), float(noise_std)
        self.image_size = int(templates.shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        size = self.image_size
        noise = self.noise_std * torch.randn(1, size, size, generator=generator)
        image = (self.templates[self.labels[i]] + noise).clamp_(0.0, 1.0)
        return image.expand(3, -1, -1).contiguous()


class LazyImages:
    """A tensor-like (N, 3, S, S) float32 view of ``store`` items ``index`` (all items when ``index`` is None)."""

    dtype = torch.float32
    ndim = 4

    def __init__(self, store: ImageStore, index: np.ndarray | Sequence[int] | None = None) -> None:
        self.store = store
        self.index = (np.arange(len(store), dtype=np.int64) if index is None
                      else np.asarray(index, dtype=np.int64).reshape(-1))
        if self.index.size and (self.index.min() < 0 or self.index.max() >= len(store)):
            raise IndexError(f"indices must lie in [0, {len(store)})")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), 3, self.store.image_size, self.store.image_size))

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"LazyImages({type(self.store).__name__}, shape={tuple(self.shape)})"

    def describe(self, i: int) -> str:
        """Where item i comes from (a file path, an .npz entry, …)."""
        return self.store.describe(int(self.index[i]))

    def __getitem__(self, key: Any) -> torch.Tensor | LazyImages:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0
                                                   and not key.dtype.is_floating_point and key.dtype != torch.bool):
            position = int(key)
            if not -len(self) <= position < len(self):
                raise IndexError(f"index {position} is out of range for {len(self)} images")
            return self.store.load(int(self.index[position]))
        if isinstance(key, slice):
            return self.load(self.index[key])
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"a boolean mask must have length {len(self)}, got shape {key.shape}")
            return LazyImages(self.store, self.index[key])
        if key.size == 0:
            return LazyImages(self.store, np.zeros(0, dtype=np.int64))
        if not np.issubdtype(key.dtype, np.integer):
            raise IndexError(f"LazyImages takes ints, slices, integer arrays or boolean masks, not {key.dtype}")
        if key.min() < -len(self) or key.max() >= len(self):
            raise IndexError(f"indices out of range for {len(self)} images")
        return LazyImages(self.store, self.index[key])

    def load(self, items: np.ndarray | None = None) -> torch.Tensor:
        """Decode store items ``items`` (default: all of this view) into one (n, 3, S, S) tensor."""
        items = self.index if items is None else np.asarray(items, dtype=np.int64)
        size = self.store.image_size
        if items.size == 0:
            return torch.zeros(0, 3, size, size)
        if items.size == 1:
            return self.store.load(int(items[0]))[None]
        images = list(_thread_pool().map(self.store.load, (int(i) for i in items)))
        return torch.stack(images)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def is_lazy(images: object) -> bool:
    return isinstance(images, LazyImages)


def row_range(images: torch.Tensor | LazyImages, start: int, stop: int) -> torch.Tensor | LazyImages:
    """Rows [start, stop) without decoding anything: a tensor view, or a lazy view of ``LazyImages`` (whose
    slice would decode the whole range at once, which a shard of a real data set does not fit in memory)."""
    if isinstance(images, LazyImages):
        return images[np.arange(start, stop, dtype=np.int64)]
    return images[start:stop]
