"""Long-tailed data sets: embedded ones with real pixels, a registry, long-tail sampling and loaders."""

from __future__ import annotations

from typing import Callable

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset, make_loader
from scilt_theory.data.embedded import build_digits, build_scitiles, build_synthetic
from scilt_theory.data.longtail import class_groups, longtail_counts, subsample_per_class

DATASETS: dict[str, Callable[[DataConfig], LongTailDataset]] = {
    "scitiles-lt": build_scitiles,
    "digits-lt": build_digits,
    "synthetic-lt": build_synthetic,
}


def build_dataset(config: DataConfig) -> LongTailDataset:
    """Build the data set ``config.name`` deterministically from ``config``."""
    if config.name not in DATASETS:
        raise ValueError(f"unknown data set {config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[config.name](config)


__all__ = ["DATASETS", "DataConfig", "LongTailDataset", "build_dataset", "class_groups", "longtail_counts",
           "make_loader", "subsample_per_class"]
