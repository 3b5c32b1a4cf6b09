"""``digits-lt``: scikit-learn's bundled 8 × 8 handwritten digits (1797 images, 10 classes), long-tailed.

- Pixels: intensities 0–16 scaled to [0, 1], upsampled bilinearly to ``image_size``, grey replicated to 3 channels.
- Split: a balanced, seeded test split is drawn first (30 per class by default); the long-tail training profile is
  then subsampled, seeded, from what is left, so train and test never share a source image.
- Head size: by default n_max is the largest size every class can afford after the test split (144 with 30 test
  images per class), so at imbalance 100 the tail classes have 1–4 images; asking for more is an error.
- Class order: the fixed digit order (not drawn from the seed): digit 0 is the head, digit 9 the smallest class.
  ``num_classes`` K keeps digits 0 … K−1.
- ``provenance``: ``train_index`` / ``test_index``, the row of every sample in ``load_digits()``;
  ``test_same_distribution`` True (both splits are seeded random subsets of each digit's images; note that
  ``load_digits`` does not identify writers, so one writer's digits may fall on both sides, as they would under
  any random split of that pool).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.longtail import longtail_counts, subsample_per_class

DEFAULT_TEST_PER_CLASS = 30


def build_digits(config: DataConfig) -> LongTailDataset:
    """Build ``digits-lt`` (see the module docstring); deterministic given ``config``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    labels = digits.target.astype(np.int64)
    num_classes = config.num_classes or 10
    if num_classes > 10:
        raise ValueError(f"digits-lt has 10 classes, {num_classes} were asked for")
    source_index = np.flatnonzero(labels < num_classes)
    images, labels = images[torch.from_numpy(source_index)], labels[source_index]
    rng = np.random.default_rng(config.seed)
    n_test = config.test_per_class or DEFAULT_TEST_PER_CLASS
    smallest = int(np.bincount(labels, minlength=num_classes).min())
    if n_test >= smallest:
        raise ValueError(f"digits-lt can hold out at most {smallest - 1} test images per class (its smallest class "
                         f"has {smallest}), {n_test} were asked for")
    test_idx = subsample_per_class(labels, [n_test] * num_classes, rng)
    pool = np.setdiff1d(np.arange(labels.size), test_idx)
    pool_counts = np.bincount(labels[pool], minlength=num_classes)
    n_max = config.max_per_class or int(pool_counts.min())
    if n_max > pool_counts.min():
        raise ValueError(f"digits-lt can give at most {int(pool_counts.min())} training images per class after "
                         f"the test split of {n_test} per class, {n_max} were asked for")
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    train_idx = pool[subsample_per_class(labels[pool], counts, rng)]
    resized = F.interpolate(images, size=(config.image_size,) * 2, mode="bilinear", align_corners=False)
    resized = resized.clamp_(0, 1).expand(-1, 3, -1, -1).contiguous()
    as_t = torch.from_numpy
    provenance = {"train_index": source_index[train_idx], "test_index": source_index[test_idx],
                  "test_same_distribution": True,
                  "test_distribution_note": "the test images of every digit are a seeded random subset of its "
                                            "images in load_digits() and the training images a random subset of "
                                            "the rest, so class by class both splits follow one distribution"}
    return LongTailDataset("digits-lt", tuple(str(c) for c in range(num_classes)), resized[as_t(train_idx)],
                           as_t(labels[train_idx]), resized[as_t(test_idx)], as_t(labels[test_idx]), config,
                           provenance)
