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
- Blocks: each source is cut into a grid of non-overlapping ``BLOCK_SIZE`` = 96-pixel square blocks (2 × the crop
  side), centred in the image (the few rows/columns left over at the borders are unused). Blocks per class, in
  the order of ``SCITILES_SOURCES``: 90, 30, 25, 196, 25, 12, 25, 25, 25 (coins, 303 × 384, is the smallest:
  3 × 4 blocks).
- Split: per class, a seeded permutation of its blocks sends ⌊``TEST_BLOCK_FRACTION`` · B⌋ = 25 % of them (at
  least one, and at least one left for training) to the test split: 22, 7, 6, 49, 6, 3, 6, 6, 6 test blocks.
  The permutation depends only on the seed and the class (``np.random.default_rng([seed, 0, c])``), not on the
  sizes asked for, and is fixed before any crop is cut.
- Crops: every crop lies wholly inside one block of its split (a uniformly chosen block of the split, a uniformly
  chosen origin inside it), so **no pixel is shared between the training and the test split**, and since
  ``train_groups`` records each training crop's block, a hold-out that keeps blocks whole
  (``scilt_theory.data.holdout``) shares none with the fitted part either. Within a split every crop (origin,
  rotation, flip) is drawn at most once. Training and test crops of class c come from their own generators
  (``[seed, 1, c]``, ``[seed, 2, c]``), so the test set does not change with ``max_per_class`` / ``imbalance``, and a
  smaller training profile is a prefix of a larger one, class by class (nested samples for studies against n).
- Same distribution: given the block assignment, the crops of a split are draws (distinct, textured) from the
  same crop law restricted to that split's blocks; the assignment is a seeded uniform permutation fixed before
  training, so the blocks are exchangeable and a test crop has, over the assignment, the law of a training crop
  of its class. ``provenance["test_same_distribution"]`` is True in that sense (with a note).
- Variety: random origin, a random multiple of 90° rotation and a random horizontal flip per crop; nearly flat
  crops (grey-level std below 4/255, e.g. the black border of the retina) are redrawn.
- Class order: the fixed order of ``SCITILES_SOURCES`` (not a permutation drawn from the seed), so class c is
  the same image for every seed and seeds are comparable. Class 0 (hubble_deep_field) is the head; the last
  class (gravel) is the smallest. With the defaults (9 classes, n_max 500, imbalance 100) the training
  counts are [500, 281, 158, 88, 50, 28, 15, 8, 5]: 3 Many, 3 Medium and 3 Few classes; 50 test patches each.
  A head of 4 000 (``--max-per-class 4000``) is supported, up to ``MAX_PATCHES_PER_CLASS``.
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
PATCH_SIZE = 48            # crop side in source pixels, the same for every class
BLOCK_SIZE = 96            # side of the square blocks the split assigns (2 × the crop side)
TEST_BLOCK_FRACTION = 0.25  # share of each source's blocks sent to the test split
MIN_PATCH_STD = 4 / 255    # redraw nearly flat crops
DEFAULT_MAX_PER_CLASS = 500
DEFAULT_TEST_PER_CLASS = 50
MAX_PATCHES_PER_CLASS = 20_000  # keeps memory sane and far below the distinct crops of the smallest split
# generator streams, each seeded by [seed, stream, class]
_ASSIGN, _TRAIN, _TEST = 0, 1, 2


def load_source(name: str) -> np.ndarray:
    """Grey-scale float32 image in [0, 1] of the scikit-image sample ``name`` (bundled, no download)."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    image = img_as_float(getattr(skimage.data, name)())
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def block_grid(shape: tuple[int, int], block: int = BLOCK_SIZE) -> np.ndarray:
    """Top-left corners (row, column), int64 (B, 2), of the non-overlapping ``block``-pixel blocks of an image of
    ``shape``: as many as fit, row-major, the grid centred (the leftover border rows/columns are unused)."""
    height, width = shape
    rows, cols = height // block, width // block
    if rows * cols < 2:
        raise ValueError(f"a {height} x {width} source holds {rows * cols} block(s) of {block} pixels; a training "
                         f"and a test block are needed")
    y0, x0 = (height - rows * block) // 2, (width - cols * block) // 2
    ys, xs = np.meshgrid(y0 + block * np.arange(rows), x0 + block * np.arange(cols), indexing="ij")
    return np.stack([ys.ravel(), xs.ravel()], axis=1).astype(np.int64)


def num_test_blocks(num_blocks: int) -> int:
    """Test blocks of a source with ``num_blocks`` blocks: ⌊TEST_BLOCK_FRACTION · B⌋, at least 1, at most B − 1."""
    return max(1, min(num_blocks - 1, int(TEST_BLOCK_FRACTION * num_blocks)))


def assign_blocks(num_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """bool (B,): True for the test blocks, the first ``num_test_blocks(B)`` of a permutation drawn from ``rng``."""
    is_test = np.zeros(num_blocks, dtype=bool)
    is_test[rng.permutation(num_blocks)[:num_test_blocks(num_blocks)]] = True
    return is_test


def cut_patches(image: np.ndarray, count: int, blocks: np.ndarray, image_size: int, rng: np.random.Generator,
                patch: int = PATCH_SIZE, block: int = BLOCK_SIZE, out: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``count`` distinct random crops of side ``patch``, each wholly inside one of ``blocks``.

    ``blocks`` (M, 2) are top-left corners of ``block``-pixel squares. Each draw picks a block uniformly, an origin
    uniformly inside it, a rotation and a flip; a crop already drawn or nearly flat is redrawn.

    Returns
    -------
    images : torch.Tensor
        float32 (count, 3, image_size, image_size) in [0, 1] (written into ``out`` when given).
    crops : np.ndarray
        int64 (count, 4): row and column of each crop's top-left corner in the source, the number of 90°
        rotations and the horizontal flip (0/1), applied in that order before resizing.
    which : np.ndarray
        int64 (count,): the row of ``blocks`` each crop lies in.
    """
    height, width = image.shape
    blocks = np.asarray(blocks, dtype=np.int64).reshape(-1, 2)
    if not (patch <= block and blocks.size and blocks.min() >= 0 and (blocks[:, 0] + block).max() <= height
            and (blocks[:, 1] + block).max() <= width):
        raise ValueError(f"blocks of {block} pixels at {blocks.tolist()[:4]}… of a {image.shape} image cannot hold "
                         f"{patch}-pixel crops")
    if count > MAX_PATCHES_PER_CLASS:
        raise ValueError(f"at most {MAX_PATCHES_PER_CLASS} patches per class can be cut, {count} were asked for")
    crops: list[np.ndarray] = []
    keys: list[tuple[int, int, int, int]] = []
    which: list[int] = []
    seen: set[tuple[int, int, int, int]] = set()
    attempts, span = 0, block - patch + 1
    while len(crops) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"could not find {count} distinct textured {patch}-pixel crops in {len(blocks)} "
                             f"block(s)")
        b = int(rng.integers(0, len(blocks)))
        offset = rng.integers(0, span, size=2)
        y, x = int(blocks[b, 0] + offset[0]), int(blocks[b, 1] + offset[1])
        key = (y, x, int(rng.integers(0, 4)), int(rng.integers(0, 2)))
        if key in seen:
            continue
        crop = image[y:y + patch, x:x + patch]
        if crop.std() < MIN_PATCH_STD:
            continue
        seen.add(key)
        keys.append(key)
        which.append(b)
        crops.append(orient(crop, key[2], key[3]))
    return (_resize(crops, image_size, out), np.array(keys, dtype=np.int64).reshape(-1, 4),
            np.array(which, dtype=np.int64))


def orient(crop: np.ndarray, rotations: int, flip: int) -> np.ndarray:
    """Rotate by ``rotations`` × 90° (counter-clockwise), then flip left-right if ``flip``."""
    crop = np.rot90(crop, rotations)
    return np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def _resize(crops: list[np.ndarray], image_size: int, out: torch.Tensor | None = None,
            chunk: int = 1024) -> torch.Tensor:
    """Stack, resize to ``image_size`` (bilinear, antialiased) and replicate grey to 3 channels, into ``out``.

    Resized in chunks, so that the only large allocation is the (N, 3, S, S) result itself.
    """
    if out is None:
        out = torch.empty(len(crops), 3, image_size, image_size)
    for start in range(0, len(crops), chunk):
        tensor = torch.from_numpy(np.stack(crops[start:start + chunk]))[:, None]
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp_(0, 1)
        out[start:start + tensor.shape[0]] = tensor  # broadcast over the 3 channels
    return out


def build_scitiles(config: DataConfig) -> LongTailDataset:
    """Build ``scitiles-lt`` (see the module docstring); deterministic given ``config``.

    ``train_groups`` is each training crop's block id. ``provenance`` holds ``train_crops`` / ``test_crops``
    (N, 4) = (row, column, rotations, flip) of every crop in its source image, ``train_blocks`` / ``test_blocks``
    (N,) = its block id, ``block_origins`` (B, 3) = (class, row, column) of block id b's top-left corner and
    ``block_is_test`` (B,) = its split (ids are unique across classes, class by class in order), ``blocks_per_class``
    [[train, test], …], ``block_size``, ``patch_size``, and ``test_same_distribution`` with its note.
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
    size = config.image_size
    train_x = torch.empty(int(counts.sum()), 3, size, size)
    test_x = torch.empty(n_test * num_classes, 3, size, size)
    train_crops, test_crops, train_blocks, test_blocks = [], [], [], []
    origins, is_test_all, per_class = [], [], []
    offset, train_at = 0, 0
    for c, name in enumerate(SCITILES_SOURCES[:num_classes]):
        image = load_source(name)
        grid = block_grid(image.shape)
        is_test = assign_blocks(len(grid), np.random.default_rng([config.seed, _ASSIGN, c]))
        ids = offset + np.arange(len(grid))
        for _split, rows, n, stream, out, crops_out, blocks_out in (
                ("train", np.flatnonzero(~is_test), int(counts[c]), _TRAIN, train_x[train_at:train_at + int(counts[c])],
                 train_crops, train_blocks),
                ("test", np.flatnonzero(is_test), n_test, _TEST, test_x[c * n_test:(c + 1) * n_test],
                 test_crops, test_blocks)):
            _, crops, which = cut_patches(image, n, grid[rows], size, np.random.default_rng([config.seed, stream, c]),
                                          out=out)
            crops_out.append(crops)
            blocks_out.append(ids[rows][which])
        train_at += int(counts[c])
        origins.append(np.column_stack([np.full(len(grid), c), grid]))
        is_test_all.append(is_test)
        per_class.append([int((~is_test).sum()), int(is_test.sum())])
        offset += len(grid)

    def labels(per: list[int]) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(num_classes), torch.tensor(per, dtype=torch.int64))

    train_blocks_all = np.concatenate(train_blocks)
    provenance = {
        "train_crops": np.concatenate(train_crops), "test_crops": np.concatenate(test_crops),
        "train_blocks": train_blocks_all, "test_blocks": np.concatenate(test_blocks),
        "block_origins": np.concatenate(origins).astype(np.int64), "block_is_test": np.concatenate(is_test_all),
        "blocks_per_class": per_class, "block_size": BLOCK_SIZE, "patch_size": PATCH_SIZE,
        "test_same_distribution": True,
        "test_distribution_note": "given the block assignment, each split's crops are drawn alike from that split's "
                                  "blocks of the class's source (no pixel shared); the assignment is a seeded "
                                  "uniform permutation of the blocks fixed before training, so blocks are "
                                  "exchangeable and a test crop has the law of a training crop of its class"}
    return LongTailDataset("scitiles-lt", tuple(SCITILES_SOURCES[:num_classes]), train_x, labels(counts.tolist()),
                           test_x, labels([n_test] * num_classes), config, provenance,
                           train_groups=torch.from_numpy(train_blocks_all))
