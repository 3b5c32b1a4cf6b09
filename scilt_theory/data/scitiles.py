"""``scitiles-lt``: patches of scikit-image's bundled scientific images, one class per source image.

Real pixels, no download: every source below loads from the installed scikit-image package (checked offline with
scikit-image 0.26; sources that need ``pooch`` downloads, e.g. ``skin``, ``human_mitosis``, ``cells3d``, are not
used).

- Grey scale: colour sources are converted with ``rgb2gray`` and every patch is replicated to 3 channels, so
  the class is not given away by its mean colour (immunohistochemistry and retina would otherwise be
  recognised by hue alone); texture and structure have to do the work.
- One scale: every patch is a 48 × 48 crop of its source image, resized (bilinear, antialiased) to
  ``image_size``. One crop size for all sources means no class can be recognised by how blurred its patches
  are (the 102 × 102 ``microaneurysms`` image was left out for that reason: it needs smaller crops).
- No leakage: each source is split spatially. Test crops lie wholly in a strip of 25 % of its width at one side
  (the right, or the left for ``cell``, see ``TEST_SIDE``), training crops wholly in the other 75 %, so no test
  patch shares a pixel with a training patch. Within a split, every crop (origin, rotation, flip) is drawn at
  most once.
- Variety: random origin, a random multiple of 90° rotation and a random horizontal flip per crop; nearly flat
  crops (grey-level std below 4/255, e.g. the black border of the retina) are redrawn.
- Class order: the fixed order of ``SCITILES_SOURCES`` (not a permutation drawn from the seed), so class c is
  the same image for every seed and seeds are comparable. Class 0 (hubble_deep_field) is the head; the last
  class (gravel) is the smallest. With the defaults (9 classes, n_max 500, imbalance 100) the training
  counts are [500, 281, 158, 88, 50, 28, 15, 8, 5]: 3 Many, 3 Medium and 3 Few classes; 50 test patches each.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.longtail import longtail_counts

SCITILES_SOURCES = ("hubble_deep_field", "cell", "immunohistochemistry", "retina", "moon", "coins", "brick",
                    "grass", "gravel")
PATCH_SIZE = 48          # crop side in source pixels, the same for every class
TEST_FRACTION = 0.25     # share of each source's width (a strip at one side) reserved for test crops
MIN_PATCH_STD = 4 / 255  # redraw nearly flat crops
# "cell" holds its test strip on the left: its one cell body straddles the right strip, whose test patches would
# then show a bright blob seen in few training patches; the left strip is background, like most training patches.
TEST_SIDE = {"cell": "left"}  # every other source: "right"
DEFAULT_MAX_PER_CLASS = 500
DEFAULT_TEST_PER_CLASS = 50
MAX_PATCHES_PER_CLASS = 20_000  # keeps memory sane and far below the distinct crops of the smallest region


def load_source(name: str) -> np.ndarray:
    """Grey-scale float32 image in [0, 1] of the scikit-image sample ``name`` (bundled, no download)."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    image = img_as_float(getattr(skimage.data, name)())
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def split_regions(width: int, test_side: str = "right", patch: int = PATCH_SIZE
                  ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Column ranges [start, stop) of the training and the test region of a source ``width`` pixels wide.

    The test region is the ``TEST_FRACTION`` of the width at ``test_side`` ("right" or "left"), the training
    region the rest; the two are disjoint and each can hold a ``patch``-pixel crop.
    """
    test_width = width - int(round(width * (1 - TEST_FRACTION)))
    if test_width < patch or width - test_width < patch:
        raise ValueError(f"a source image {width} pixels wide is too narrow for {patch}-pixel crops in both its "
                         f"training and its test region")
    if test_side == "right":
        return (0, width - test_width), (width - test_width, width)
    if test_side == "left":
        return (test_width, width), (0, test_width)
    raise ValueError(f"test_side must be 'left' or 'right', got {test_side!r}")


def cut_patches(image: np.ndarray, count: int, x_range: tuple[int, int], image_size: int,
                rng: np.random.Generator, patch: int = PATCH_SIZE) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` distinct random crops of side ``patch`` lying wholly inside the columns ``x_range``.

    Returns
    -------
    images : torch.Tensor
        float32 (count, 3, image_size, image_size) in [0, 1].
    crops : np.ndarray
        int64 (count, 4): row and column of each crop's top-left corner in the source, the number of 90°
        rotations and the horizontal flip (0/1), applied in that order before resizing.
    """
    height, width = image.shape
    x0, x1 = x_range
    if not (0 <= x0 and x1 <= width and x1 - x0 >= patch and height >= patch):
        raise ValueError(f"columns {x_range} of a {image.shape} image cannot hold {patch}-pixel crops")
    if count > MAX_PATCHES_PER_CLASS:
        raise ValueError(f"at most {MAX_PATCHES_PER_CLASS} patches per class can be cut, {count} were asked for")
    crops: list[np.ndarray] = []
    keys: list[tuple[int, int, int, int]] = []
    seen: set[tuple[int, int, int, int]] = set()
    attempts = 0
    while len(crops) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"could not find {count} distinct textured {patch}-pixel crops in columns {x_range}")
        y = int(rng.integers(0, height - patch + 1))
        x = int(rng.integers(x0, x1 - patch + 1))
        key = (y, x, int(rng.integers(0, 4)), int(rng.integers(0, 2)))
        if key in seen:
            continue
        crop = image[y:y + patch, x:x + patch]
        if crop.std() < MIN_PATCH_STD:
            continue
        seen.add(key)
        keys.append(key)
        crops.append(orient(crop, key[2], key[3]))
    return _resize(crops, image_size), np.array(keys, dtype=np.int64).reshape(-1, 4)


def orient(crop: np.ndarray, rotations: int, flip: int) -> np.ndarray:
    """Rotate by ``rotations`` × 90° (counter-clockwise), then flip left-right if ``flip``."""
    crop = np.rot90(crop, rotations)
    return np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def _resize(crops: list[np.ndarray], image_size: int) -> torch.Tensor:
    """Stack, resize to ``image_size`` (bilinear, antialiased) and replicate grey to 3 channels."""
    tensor = torch.from_numpy(np.stack(crops))[:, None]
    tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True,
                           align_corners=False).clamp_(0, 1)
    return tensor.expand(-1, 3, -1, -1).contiguous()


def build_scitiles(config: DataConfig) -> LongTailDataset:
    """Build ``scitiles-lt`` (see the module docstring); deterministic given ``config``.

    ``provenance`` holds ``train_crops`` / ``test_crops`` (N, 4) = (row, column, rotations, flip) of every
    sample's crop in its source image, ``train_columns`` / ``test_columns`` (K, 2) = the [start, stop) column
    range of each source's training and test region, and ``patch_size``.
    """
    num_classes = config.num_classes or len(SCITILES_SOURCES)
    if num_classes > len(SCITILES_SOURCES):
        raise ValueError(f"scitiles-lt has {len(SCITILES_SOURCES)} classes, {num_classes} were asked for")
    n_max = config.max_per_class or DEFAULT_MAX_PER_CLASS
    n_test = config.test_per_class or DEFAULT_TEST_PER_CLASS
    if max(n_max, n_test) > MAX_PATCHES_PER_CLASS:
        raise ValueError(f"scitiles-lt cuts at most {MAX_PATCHES_PER_CLASS} patches per class, "
                         f"{max(n_max, n_test)} were asked for")
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    rng = np.random.default_rng(config.seed)
    train_x, train_crops, test_x, test_crops, train_cols, test_cols = [], [], [], [], [], []
    for c, name in enumerate(SCITILES_SOURCES[:num_classes]):
        image = load_source(name)
        train_region, test_region = split_regions(image.shape[1], TEST_SIDE.get(name, "right"))
        images, crops = cut_patches(image, int(counts[c]), train_region, config.image_size, rng)
        train_x.append(images)
        train_crops.append(crops)
        images, crops = cut_patches(image, n_test, test_region, config.image_size, rng)
        test_x.append(images)
        test_crops.append(crops)
        train_cols.append(train_region)
        test_cols.append(test_region)

    def labels(per_class: list[int]) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(num_classes), torch.tensor(per_class, dtype=torch.int64))

    provenance = {"train_crops": np.concatenate(train_crops), "test_crops": np.concatenate(test_crops),
                  "train_columns": np.array(train_cols, dtype=np.int64),
                  "test_columns": np.array(test_cols, dtype=np.int64), "patch_size": PATCH_SIZE}
    return LongTailDataset("scitiles-lt", tuple(SCITILES_SOURCES[:num_classes]), torch.cat(train_x),
                           labels(counts.tolist()), torch.cat(test_x), labels([n_test] * num_classes), config,
                           provenance)
