"""``synthetic-lt``: seeded class patterns plus noise, built in milliseconds, for fast tests of other modules.

Every class has a smooth template (4 × 4 uniform noise upsampled bilinearly to ``image_size``); a sample is its
class template plus Gaussian noise (std 0.15), clipped to [0, 1]: a class-dependent mean pattern that a small
model learns quickly, not a benchmark. Training and test samples are i.i.d. draws of one law per class
(``provenance["test_same_distribution"]`` True). Any number of classes
(``num_classes``, default 5); default profile n_max 200 with 20 test images per class. Class c has rank c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.longtail import longtail_counts

DEFAULT_NUM_CLASSES = 5
DEFAULT_MAX_PER_CLASS = 200
DEFAULT_TEST_PER_CLASS = 20
NOISE_STD = 0.15


def build_synthetic(config: DataConfig) -> LongTailDataset:
    """Build ``synthetic-lt`` (see the module docstring); deterministic given ``config``."""
    num_classes = config.num_classes or DEFAULT_NUM_CLASSES
    n_max = config.max_per_class or DEFAULT_MAX_PER_CLASS
    n_test = config.test_per_class or DEFAULT_TEST_PER_CLASS
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    generator = torch.Generator().manual_seed(config.seed)
    size = config.image_size
    templates = F.interpolate(torch.rand(num_classes, 1, 4, 4, generator=generator), size=(size, size),
                              mode="bilinear", align_corners=False)

    def sample(per_class: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.cat([torch.full((int(k),), c, dtype=torch.int64) for c, k in enumerate(per_class)])
        noise = NOISE_STD * torch.randn(labels.numel(), 1, size, size, generator=generator)
        images = (templates[labels] + noise).clamp_(0, 1)
        return images.expand(-1, 3, -1, -1).contiguous(), labels

    train_x, train_y = sample(counts.tolist())
    test_x, test_y = sample([n_test] * num_classes)
    provenance = {"test_same_distribution": True,
                  "test_distribution_note": "every training and test sample of a class is drawn independently from "
                                            "the same law (its template plus Gaussian noise), so class by class the "
                                            "splits are i.i.d. from one distribution"}
    return LongTailDataset("synthetic-lt", tuple(f"pattern-{c}" for c in range(num_classes)), train_x, train_y,
                           test_x, test_y, config, provenance)
