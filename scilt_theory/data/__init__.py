"""Long-tailed data sets: embedded ones with real pixels (no download), readers of real data sets on disk
(NIH ChestX-ray14 / NIH-CXR-LT, ISIC 2019, BloodMNIST / PBC, any ImageFolder tree), the real NIH class profile with
synthetic pixels, a registry of ``DatasetSpec``s (what each data set is: whether it reads files, which options
apply, whether timm's resize applies), long-tail sampling, a group-aware hold-out split, loaders.

``build_dataset(DataConfig(name=...))`` returns a ``LongTailDataset`` whose images are float32 (N, 3, H, W) in
[0, 1] (not normalised: the model does that), with class 0 the head: a tensor for the embedded sets, a lazily
decoding ``LazyImages`` for the others. ``DATASETS`` maps every name to its spec.
"""

from __future__ import annotations

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.holdout import Holdout, holdout_parts, holdout_split
from scilt_theory.data.lazy import LazyImages, row_range
from scilt_theory.data.loaders import make_loader, normalize
from scilt_theory.data.longtail import head_first_order, longtail_counts, subsample_per_class
from scilt_theory.data.registry import DATASETS, DatasetSpec, build_dataset, register_dataset
from scilt_theory.metrics import class_groups

__all__ = ["DATASETS", "DataConfig", "DatasetSpec", "Holdout", "LazyImages", "LongTailDataset", "build_dataset",
           "class_groups", "head_first_order", "holdout_parts", "holdout_split", "longtail_counts", "make_loader",
           "normalize", "register_dataset", "row_range", "subsample_per_class"]
