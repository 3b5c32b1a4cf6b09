"""The long-tailed data set that every reader returns, with the checks that make it one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from scilt_theory.data.config import DataConfig
from scilt_theory.data.lazy import LazyImages
from scilt_theory.metrics import class_groups

Images = torch.Tensor | LazyImages


@dataclass(frozen=True, eq=False)
class LongTailDataset:
    """A long-tailed training split and a test split.

    Contract (checked on construction, so every reader, embedded or real, gives the same kind of object):

    - images are float32 (N, 3, H, W) with values in [0, 1]; grey-scale sources are replicated to 3 channels.
      The data are *not* normalised: the model applies its mean/std inside ``forward``. Embedded data sets hold
      a tensor; real ones a ``LazyImages`` (same shape/dtype/indexing, decoded on access; its values are checked
      when decoded, not here, so that building a data set does not read every file).
    - labels are int64 (N,) in [0, K).
    - class order: class 0 is the head and training counts never increase with the class index (ties allowed);
      ``longtail.head_first_order`` relabels a real data set to meet this.
    - every class has at least one training image.

    ``provenance`` holds per-sample bookkeeping that proves the split is clean (e.g. source indices for
    digits-lt, crop positions and the block of every crop for scitiles-lt) and, for every built-in data set,
    ``test_same_distribution`` (bool: is the test split drawn from the training distribution, class by class?)
    with a one-sentence ``test_distribution_note``; it is informative only.

    ``train_groups`` (optional, int64, one per training image): images that share a group must stay on one side of
    any later split of the training set (scitiles-lt: the source block a crop was cut from, since crops of one
    block overlap); ``None`` means every image is its own group. ``scilt_theory.data.holdout`` keeps groups whole.

    ``extra_splits`` (optional): further labelled splits by name, each (images, labels) with the contract above, e.g.
    scitiles-pop's ``validation`` draw (where recipes are chosen) and its out-of-population ``shift`` split (named in
    ``provenance["out_of_population_splits"]``); ``experiments.train`` reports the model's metrics on each.
    """

    name: str
    class_names: tuple[str, ...]
    train_images: Images
    train_labels: torch.Tensor
    test_images: Images
    test_labels: torch.Tensor
    config: DataConfig
    provenance: Mapping[str, Any] = field(default_factory=dict)
    train_groups: torch.Tensor | None = None
    extra_splits: Mapping[str, tuple[Images, torch.Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if k < 2:
            raise ValueError(f"data set {self.name!r} needs at least 2 classes, got {k}")
        extra = [(name, *pair) for name, pair in self.extra_splits.items()]
        for split, images, labels in (("train", self.train_images, self.train_labels),
                                      ("test", self.test_images, self.test_labels), *extra):
            if not isinstance(images, (torch.Tensor, LazyImages)):
                raise ValueError(f"{split} images of {self.name!r} must be a tensor or LazyImages, got "
                                 f"{type(images).__name__}")
            if images.dtype != torch.float32 or images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"{split} images of {self.name!r} must be float32 (N, 3, H, W), got "
                                 f"{images.dtype} {tuple(images.shape)}")
            if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
                raise ValueError(f"{split} labels of {self.name!r} must be int64 with one label per image, got "
                                 f"{labels.dtype} {tuple(labels.shape)} for {images.shape[0]} images")
            if images.shape[0] == 0:
                raise ValueError(f"the {split} split of {self.name!r} is empty")
            if isinstance(images, torch.Tensor) and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
                raise ValueError(f"{split} images of {self.name!r} must lie in [0, 1] (do not normalise them)")
            if int(labels.min()) < 0 or int(labels.max()) >= k:
                raise ValueError(f"{split} labels of {self.name!r} must lie in [0, {k}), got "
                                 f"[{int(labels.min())}, {int(labels.max())}]")
        for split, (images, _) in (("test", (self.test_images, None)), *self.extra_splits.items()):
            if self.train_images.shape[1:] != images.shape[1:]:
                raise ValueError(f"train and {split} images of {self.name!r} differ in shape: "
                                 f"{tuple(self.train_images.shape[1:])} and {tuple(images.shape[1:])}")
        groups = self.train_groups
        if groups is not None and (not isinstance(groups, torch.Tensor) or groups.dtype != torch.int64
                                   or groups.shape != self.train_labels.shape):
            raise ValueError(f"train_groups of {self.name!r} must be None or an int64 tensor with one group id per "
                             f"training image ({self.train_labels.shape[0]}), got "
                             f"{getattr(groups, 'dtype', type(groups).__name__)} "
                             f"{tuple(getattr(groups, 'shape', ()))}")
        counts = self.class_counts
        if counts.min() < 1:
            raise ValueError(f"every class of {self.name!r} needs a training image; class "
                             f"{self.class_names[int(counts.argmin())]!r} has none")
        if np.any(np.diff(counts) > 0):
            raise ValueError(f"the classes of {self.name!r} must be ordered by training count, largest first "
                             f"(class 0 is the head), got counts {counts.tolist()}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        """Training images per class (int64, length K, non-increasing)."""
        return np.bincount(self.train_labels.numpy(), minlength=self.num_classes)

    @property
    def test_counts(self) -> np.ndarray:
        """Test images per class (int64, length K; balanced for the embedded data sets)."""
        return np.bincount(self.test_labels.numpy(), minlength=self.num_classes)

    @property
    def groups(self) -> list[str]:
        """"many" / "medium" / "few" per class, by training count and the config's thresholds."""
        return class_groups(self.class_counts, self.config.many_threshold, self.config.few_threshold)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description: counts, groups, measured imbalance factor (max/min), seed and config."""
        counts = self.class_counts
        groups = self.groups
        return {"name": self.name, "num_classes": self.num_classes, "class_names": list(self.class_names),
                "image_shape": list(self.train_images.shape[1:]), "train_counts": counts.tolist(),
                "test_counts": self.test_counts.tolist(), "groups": groups,
                "group_sizes": {g: groups.count(g) for g in ("many", "medium", "few")},
                "num_train": int(counts.sum()), "num_test": int(self.test_counts.sum()),
                "imbalance_factor": float(counts.max() / counts.min()), "seed": self.config.seed,
                "extra_splits": {name: int(labels.numel()) for name, (_, labels) in self.extra_splits.items()},
                "config": asdict(self.config)}
