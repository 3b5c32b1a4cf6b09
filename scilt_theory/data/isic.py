"""``isic2019``: the ISIC 2019 dermoscopy challenge training set (https://challenge.isic-archive.com/data/#2019).

Expected under ``data_root``:

- ``ISIC_2019_Training_GroundTruth.csv``: columns ``image`` and the one-hot diagnosis columns MEL, NV, BCC, AK,
  BKL, DF, VASC, SCC, UNK (values 0.0 / 1.0). Every row must have exactly one 1 (the challenge's labels are
  single-label); another row is an error naming its line.
- the JPEG images ``<image>.jpg`` anywhere below ``data_root`` (normally ``ISIC_2019_Training_Input/``).
- optional official test split: ``ISIC_2019_Test_GroundTruth.csv`` (same columns) with its images below
  ``data_root`` too; without it the test split is held out of the training images (``split.py``).

UNK has no training image in the 2019 release, so it is dropped (``provenance["dropped_classes"]``) and 8 classes
remain. ISIC 2019 holds several images of some lesions; the held-out split is image-wise, not lesion-wise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.files import data_root, find_one, index_images, read_table, require_columns, resolve_images
from scilt_theory.data.images import preprocess_from_config
from scilt_theory.data.lazy import FileStore
from scilt_theory.data.split import SourcePool, build_longtail

ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
TRAIN_CSV = "ISIC_2019_Training_GroundTruth.csv"
TEST_CSV = "ISIC_2019_Test_GroundTruth.csv"
LAYOUT = (f"{TRAIN_CSV} (image, {', '.join(ISIC_CLASSES)}) and the images <image>.jpg below the data root, e.g. in "
          f"ISIC_2019_Training_Input/")


def one_hot_labels(path: Path, header: list[str], rows: list[list[str]], classes: tuple[str, ...],
                   key: str) -> tuple[list[str], np.ndarray]:
    """Image ids and class indices of a one-hot table; a row without exactly one 1 is an error."""
    key_col, *class_cols = require_columns(path, header, (key, *classes), LAYOUT)
    ids, labels = [], []
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) for c in class_cols]
        except ValueError:
            raise ValueError(f"{path}, line {line}: the class columns must hold 0 or 1") from None
        if any(v not in (0.0, 1.0) for v in values) or sum(values) != 1.0:
            raise ValueError(f"{path}, line {line} ({row[key_col]}): expected exactly one class set to 1, got "
                             f"{dict(zip(classes, values))}")
        ids.append(row[key_col])
        labels.append(values.index(1.0))
    if not ids:
        raise ValueError(f"{path} has no rows")
    return ids, np.asarray(labels, dtype=np.int64)


def build_isic2019(config: DataConfig) -> LongTailDataset:
    """Build ``isic2019`` from ``config.data_root`` (see the module docstring)."""
    root = data_root(config, LAYOUT)
    if not root.is_dir():
        raise ValueError(f"data root {root} is not a folder; expected {LAYOUT}")
    train_csv = find_one(root, (TRAIN_CSV, f"*/{TRAIN_CSV}"), TRAIN_CSV, LAYOUT)
    if train_csv is None:
        raise FileNotFoundError(f"{TRAIN_CSV} is missing under {root}; expected {LAYOUT}")
    ids, labels = one_hot_labels(train_csv, *read_table(train_csv), ISIC_CLASSES, "image")
    test_csv = find_one(root, (TEST_CSV, f"*/{TEST_CSV}"), TEST_CSV, LAYOUT)
    official = None
    if test_csv is not None:
        test_ids, test_labels = one_hot_labels(test_csv, *read_table(test_csv), ISIC_CLASSES, "image")
        official = np.concatenate([np.zeros(len(ids), dtype=bool), np.ones(len(test_ids), dtype=bool)])
    index = index_images([root])
    by_stem = {Path(name).stem: path for name, path in index.items()}
    paths = resolve_images(ids, by_stem, train_csv, str(root))
    if test_csv is not None:
        paths += resolve_images(test_ids, by_stem, test_csv, str(root))
        labels = np.concatenate([labels, test_labels])
    store = FileStore([str(p) for p in paths], preprocess_from_config(config), root=str(root))
    source = {"source_file": str(train_csv), "source_test_file": None if test_csv is None else str(test_csv)}
    return build_longtail("isic2019", SourcePool(store, labels, ISIC_CLASSES, official, source), config)
