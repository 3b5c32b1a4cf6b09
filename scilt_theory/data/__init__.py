"""Long-tailed data sets: embedded ones with real pixels (no download), a registry, long-tail sampling, loaders.

``build_dataset(DataConfig(name=...))`` returns a ``LongTailDataset`` whose images are float32 (N, 3, H, W) in
[0, 1] (not normalised: the model does that), with class 0 the head. ``DATASETS`` lists the names.
"""

from __future__ import annotations

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.loaders import make_loader, normalize
from scilt_theory.data.longtail import class_groups, head_first_order, longtail_counts, subsample_per_class
from scilt_theory.data.registry import DATASETS, build_dataset, register_dataset

__all__ = ["DATASETS", "DataConfig", "LongTailDataset", "build_dataset", "class_groups", "head_first_order",
           "longtail_counts", "make_loader", "normalize", "register_dataset", "subsample_per_class"]
