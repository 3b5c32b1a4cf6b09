"""The in-memory long-tailed data set every reader returns, and a seeded loader over it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from scilt_theory.data.config import DataConfig
from scilt_theory.data.longtail import class_groups


@dataclass(frozen=True)
class LongTailDataset:
    """Images are float32 (N, 3, H, W) in [0, 1] (the model normalises); labels int64; class 0 is the head."""

    name: str
    class_names: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    config: DataConfig

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        return np.bincount(self.train_labels.numpy(), minlength=self.num_classes)

    @property
    def test_counts(self) -> np.ndarray:
        return np.bincount(self.test_labels.numpy(), minlength=self.num_classes)

    @property
    def groups(self) -> list[str]:
        return class_groups(self.class_counts, self.config.many_threshold, self.config.few_threshold)

    def summary(self) -> dict:
        counts = self.class_counts
        return {"name": self.name, "class_names": list(self.class_names), "train_counts": counts.tolist(),
                "test_counts": self.test_counts.tolist(), "groups": self.groups,
                "imbalance_factor": float(counts.max() / max(counts.min(), 1)), "config": asdict(self.config)}


def make_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                drop_last: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (its own generator, no global state)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last)
