"""Embedded long-tailed data sets with real pixels that ship inside installed packages (no download).

- ``scitiles-lt``: grey-scale patches of scikit-image's bundled scientific images, one class per image. Grey
  scale, so that the class is not given away by mean colour. Every image is split spatially: training patches
  come from the left 75 % of its width, test patches from the right 25 %, so no test patch overlaps a training
  patch. Patches are random crops (random flips / 90° rotations), resized to the model size.
- ``digits-lt``: scikit-learn's 8×8 handwritten digits, upsampled bilinearly; a balanced test split is drawn
  first, the long-tail profile is subsampled from the rest.
- ``synthetic-lt``: seeded class patterns plus noise, for fast tests of other modules.

Class c has rank c in the profile (class 0 is the head); the rank order of sources is the fixed order below.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.longtail import longtail_counts, subsample_per_class

SCITILES_SOURCES = ("hubble_deep_field", "cell", "immunohistochemistry", "retina", "moon", "coins", "brick",
                    "grass", "gravel", "microaneurysms")
TEST_STRIP = 0.25   # right-most share of each source image's width reserved for test patches
MIN_PATCH_STD = 4.0  # reject nearly flat crops (e.g. the black border of the retina image)


def _to_three_channels(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1).contiguous()


def _grey(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    image = img_as_float(getattr(skimage.data, name)())
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    return image.astype(np.float32)


def cut_patches(image: np.ndarray, count: int, patch: int, x_range: tuple[int, int], image_size: int,
                rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` random crops of side ``patch`` whose columns lie in ``x_range``; returns (images, origins)."""
    height = image.shape[0]
    x0, x1 = x_range
    if x1 - x0 < patch or height < patch:
        raise ValueError(f"region {x_range} of a {image.shape} image is too small for {patch}-pixel patches")
    crops, origins = [], []
    attempts = 0
    while len(crops) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError("could not find enough textured patches in the source image")
        y = int(rng.integers(0, height - patch + 1))
        x = int(rng.integers(x0, x1 - patch + 1))
        crop = image[y:y + patch, x:x + patch]
        if 255.0 * crop.std() < MIN_PATCH_STD:
            continue
        k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        crop = np.rot90(crop, k)
        crops.append(np.ascontiguousarray(crop[:, ::-1] if flip else crop))
        origins.append((y, x))
    tensor = torch.from_numpy(np.stack(crops))[:, None]
    tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True,
                           align_corners=False).clamp_(0, 1)
    return _to_three_channels(tensor), np.asarray(origins, dtype=np.int64).reshape(-1, 2)


def scitiles_patch_size(image_width: int) -> int:
    """Patch side: 48 px, smaller for images whose test strip is narrower than that."""
    return int(min(48, int(image_width * TEST_STRIP)))


def build_scitiles(config: DataConfig) -> LongTailDataset:
    num_classes = config.num_classes or len(SCITILES_SOURCES)
    if num_classes > len(SCITILES_SOURCES):
        raise ValueError(f"scitiles-lt has {len(SCITILES_SOURCES)} classes, {num_classes} were asked for")
    n_max = config.max_per_class or 500
    n_test = config.test_per_class or 50
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    rng = np.random.default_rng(config.seed)
    train_x, train_y, test_x, test_y = [], [], [], []
    for c, name in enumerate(SCITILES_SOURCES[:num_classes]):
        image = _grey(name)
        width = image.shape[1]
        split = int(round(width * (1 - TEST_STRIP)))
        patch = scitiles_patch_size(width)
        x, _ = cut_patches(image, int(counts[c]), patch, (0, split), config.image_size, rng)
        t, _ = cut_patches(image, n_test, patch, (split, width), config.image_size, rng)
        train_x.append(x)
        test_x.append(t)
        train_y.append(torch.full((x.shape[0],), c, dtype=torch.int64))
        test_y.append(torch.full((t.shape[0],), c, dtype=torch.int64))
    return LongTailDataset("scitiles-lt", tuple(SCITILES_SOURCES[:num_classes]), torch.cat(train_x),
                           torch.cat(train_y), torch.cat(test_x), torch.cat(test_y), config)


def build_digits(config: DataConfig) -> LongTailDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    labels = digits.target.astype(np.int64)
    num_classes = config.num_classes or 10
    if num_classes > 10:
        raise ValueError(f"digits-lt has 10 classes, {num_classes} were asked for")
    keep = labels < num_classes
    images, labels = images[torch.from_numpy(keep)], labels[keep]
    rng = np.random.default_rng(config.seed)
    n_test = config.test_per_class or 30
    test_idx = subsample_per_class(labels, [n_test] * num_classes, rng)
    pool = np.setdiff1d(np.arange(labels.size), test_idx)
    pool_counts = np.bincount(labels[pool], minlength=num_classes)
    n_max = config.max_per_class or int(pool_counts.min())
    if n_max > pool_counts.min():
        raise ValueError(f"digits-lt can give at most {int(pool_counts.min())} training images per class after "
                         f"the test split, {n_max} were asked for")
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    train_idx = pool[subsample_per_class(labels[pool], counts, rng)]
    resized = _to_three_channels(F.interpolate(images, size=(config.image_size,) * 2, mode="bilinear",
                                               align_corners=False).clamp_(0, 1))
    as_t = torch.from_numpy
    return LongTailDataset("digits-lt", tuple(str(c) for c in range(num_classes)), resized[as_t(train_idx)],
                           as_t(labels[train_idx]), resized[as_t(test_idx)], as_t(labels[test_idx]), config)


def build_synthetic(config: DataConfig) -> LongTailDataset:
    num_classes = config.num_classes or 5
    n_max = config.max_per_class or 200
    n_test = config.test_per_class or 20
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    generator = torch.Generator().manual_seed(config.seed)
    size = config.image_size
    # smooth class templates: low-resolution noise upsampled, so a small ViT can tell them apart quickly
    templates = F.interpolate(torch.rand(num_classes, 1, 4, 4, generator=generator), size=(size, size),
                              mode="bilinear", align_corners=False)

    def sample(per_class) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.cat([torch.full((int(k),), c, dtype=torch.int64) for c, k in enumerate(per_class)])
        noise = 0.15 * torch.randn(labels.numel(), 1, size, size, generator=generator)
        return _to_three_channels((templates[labels] + noise).clamp_(0, 1)), labels

    train_x, train_y = sample(counts)
    test_x, test_y = sample([n_test] * num_classes)
    return LongTailDataset("synthetic-lt", tuple(f"pattern-{c}" for c in range(num_classes)), train_x, train_y,
                           test_x, test_y, config)
