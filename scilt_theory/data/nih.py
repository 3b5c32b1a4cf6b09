"""NIH ChestX-ray14 as a single-label long-tailed problem (``nih-cxr-lt``), and its real class profile with
synthetic pixels (``nih-profile``, ``nih-profile-single``).

``nih-cxr-lt`` reads, under ``data_root``, one of two layouts (the first found wins):

1. NIH-CXR-LT split files (Holste et al., MICCAI DALI 2022; NIH box folder ``LongTailCXR``):
   ``nih-cxr-lt_single-label_train.csv`` and ``nih-cxr-lt_single-label_test.csv`` (optionally
   ``nih-cxr-lt_single-label_balanced-test.csv``), columns ``id`` (the image file name), one 0/1 column per class
   (20 classes in the release) and optionally ``subject_id``. Every row must have exactly one 1. The training pool
   is the train file; the test pool is the balanced-test file for ``test_split=balanced`` when it exists, otherwise
   the test file. ``*_balanced-val.csv`` is not used.
2. The NIH release (https://nihcc.app.box.com/v/ChestXray-NIHCC): ``Data_Entry_2017*.csv`` with columns
   "Image Index" and "Finding Labels" (labels separated by ``|``), and the official patient-wise split
   ``train_val_list.txt`` / ``test_list.txt`` (one file name per line) next to it or in ``data_root``.

   **Multi-label → single-label rule**: the labels of a row are its "Finding Labels" split at ``|`` (blanks
   stripped, repeats merged). A row with exactly one label is kept with that label as its class; "No Finding" is
   such a label (it is a class, the head: 60 361 of 112 120 rows). A row with two or more labels is dropped
   (``provenance["multi_label_rows_dropped"]``) — no label is preferred over another. So the classes are the 14
   findings plus "No Finding" (``--exclude-classes "No Finding"`` drops it). Images in neither list are dropped.
   Without the list files the reader stops: an image-wise random split would put one patient on both sides.

Images: ``images*/`` folders below ``data_root`` (``images_001/images/*.png`` … as unpacked from the release, or one
``images/`` folder). Every listed image must be present. NIH PNGs are 8-bit grey (a few are RGBA: alpha dropped).

``nih-profile`` / ``nih-profile-single``: no images are read. The training set has exactly the class counts of
NIH ChestX-ray14 shipped in ``profiles/nih_chestxray14.json`` (computed from the Data_Entry_2017_v2020.csv.gz that
torchxrayvision 1.5.7's wheel ships; its sha256 is recorded there): ``nih-profile`` uses the per-label counts of
the label table (rows carrying each label, 15 labels incl. "No Finding"), ``nih-profile-single`` the counts under
the single-label rule above. Pixels are seeded synthetic grey images (a smooth class template plus Gaussian noise,
``GeneratedStore``), made on access, so even the full 141 537-image profile costs no memory. The profile is
natural (``max_per_class`` M scales it to max(1, ⌊n_c · M / n_0⌋)); the test split is balanced, ``test_per_class``
(default 20) generated images per class.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.files import data_root, find_one, index_images, read_table, require_columns, resolve_images
from scilt_theory.data.images import preprocess_from_config
from scilt_theory.data.lazy import FileStore, GeneratedStore
from scilt_theory.data.split import SourcePool, build_longtail

NIH_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
              "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
              "No Finding")
LT_PREFIX = "nih-cxr-lt_single-label_"
LT_ID_COLUMNS = ("id", "subject_id")
LAYOUT = ("either the NIH-CXR-LT files nih-cxr-lt_single-label_train.csv and nih-cxr-lt_single-label_test.csv, "
          "or Data_Entry_2017*.csv with train_val_list.txt and test_list.txt; and the PNG images in images*/ folders")
PROFILE_FILE = Path(__file__).with_name("profiles") / "nih_chestxray14.json"
PROFILE_NOISE_STD = 0.15
PROFILE_TEST_PER_CLASS = 20


def finding_labels(field: str) -> list[str]:
    """The distinct labels of a "Finding Labels" cell, in their order: ``"A|B| A"`` → ``["A", "B"]``."""
    labels: list[str] = []
    for part in field.split("|"):
        part = part.strip()
        if part and part not in labels:
            labels.append(part)
    return labels


def single_label_rows(findings: list[str]) -> tuple[np.ndarray, list[str]]:
    """The multi-label → single-label rule: (indices of rows with exactly one label, that label per kept row)."""
    kept, labels = [], []
    for i, field in enumerate(findings):
        row = finding_labels(field)
        if len(row) == 1:
            kept.append(i)
            labels.append(row[0])
    return np.asarray(kept, dtype=np.int64), labels


def label_table(findings: list[str]) -> dict[str, dict[str, int]]:
    """Per-label counts (rows carrying each label) and single-label-rule counts, in ``NIH_LABELS`` order first."""
    per_label: dict[str, int] = {}
    for field in findings:
        for label in finding_labels(field):
            per_label[label] = per_label.get(label, 0) + 1
    _, single = single_label_rows(findings)
    names = class_order(per_label)
    return {"per_label": {n: per_label.get(n, 0) for n in names},
            "single_label": {n: single.count(n) for n in names}}


def class_order(found) -> tuple[str, ...]:
    """``NIH_LABELS`` first (those present), then any other label found, alphabetically."""
    return tuple([n for n in NIH_LABELS if n in found] + sorted(set(found) - set(NIH_LABELS)))


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _image_index(root: Path) -> dict[str, Path]:
    folders = sorted(p for p in root.glob("images*") if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"no images*/ folder under {root}; expected the NIH PNGs in images_001/images/ … "
                                f"or images/")
    return index_images(folders)


def _pool_from_lt_csvs(root: Path, train_csv: Path, config: DataConfig) -> SourcePool:
    folder = train_csv.parent
    test_csv = folder / f"{LT_PREFIX}test.csv"
    balanced = folder / f"{LT_PREFIX}balanced-test.csv"
    if config.test_split == "balanced" and balanced.is_file():
        test_csv = balanced
    if not test_csv.is_file():
        raise FileNotFoundError(f"{test_csv.name} is missing next to {train_csv}; the NIH-CXR-LT release has "
                                f"{LT_PREFIX}train.csv, {LT_PREFIX}test.csv and {LT_PREFIX}balanced-test.csv")
    tables = []
    classes = None
    for path in (train_csv, test_csv):
        header, rows = read_table(path)
        require_columns(path, header, ("id",), f"columns id and one 0/1 column per class ({LAYOUT})")
        names = tuple(h for h in header if h.lower() not in LT_ID_COLUMNS)
        if classes is None:
            classes = names
        elif names != classes:
            raise ValueError(f"{path} has class columns {names}, but {train_csv.name} has {classes}")
        id_col = header.index("id")
        cols = [header.index(n) for n in names]
        ids, labels = [], []
        for line, row in enumerate(rows, start=2):
            values = [row[c] for c in cols]
            if any(v not in ("0", "1", "0.0", "1.0") for v in values) or [float(v) for v in values].count(1.0) != 1:
                raise ValueError(f"{path}, line {line} ({row[id_col]}): expected exactly one class column set to 1 "
                                 f"(single-label file)")
            ids.append(Path(row[id_col]).name)
            labels.append([float(v) for v in values].index(1.0))
        tables.append((path, ids, labels))
    index = _image_index(root)
    paths, labels, official = [], [], []
    for part, (path, ids, table_labels) in enumerate(tables):
        paths += resolve_images(ids, index, path, f"{root}/images*")
        labels += table_labels
        official += [part == 1] * len(ids)
    store = FileStore([str(p) for p in paths], preprocess_from_config(config), root=str(root))
    return SourcePool(store, np.asarray(labels, dtype=np.int64), classes, np.asarray(official, dtype=bool),
                      {"source_layout": "nih-cxr-lt-csv", "source_file": str(train_csv),
                       "source_test_file": str(test_csv)})


def _pool_from_data_entry(root: Path, entry: Path, config: DataConfig) -> SourcePool:
    lists = {}
    for name in ("train_val_list.txt", "test_list.txt"):
        found = [p for p in (entry.parent / name, root / name) if p.is_file()]
        if not found:
            raise FileNotFoundError(f"{name} is missing next to {entry} (and in {root}); nih-cxr-lt uses the "
                                    f"official patient-wise split train_val_list.txt / test_list.txt")
        lists[name] = _read_list(found[0])
    header, rows = read_table(entry)
    image_col, label_col = require_columns(entry, header, ("Image Index", "Finding Labels"),
                                           "columns 'Image Index' and 'Finding Labels'")
    kept, single = single_label_rows([row[label_col] for row in rows])
    train_set, test_set = lists["train_val_list.txt"], lists["test_list.txt"]
    names, labels, official, unlisted = [], [], [], 0
    classes = class_order(set(single))
    for i, label in zip(kept.tolist(), single):
        image = rows[i][image_col]
        if image in test_set:
            official.append(True)
        elif image in train_set:
            official.append(False)
        else:
            unlisted += 1
            continue
        names.append(image)
        labels.append(classes.index(label))
    if not names:
        raise ValueError(f"{entry} has no single-label row whose image is in train_val_list.txt or test_list.txt")
    paths = resolve_images(names, _image_index(root), entry, f"{root}/images*")
    store = FileStore([str(p) for p in paths], preprocess_from_config(config), root=str(root))
    return SourcePool(store, np.asarray(labels, dtype=np.int64), classes, np.asarray(official, dtype=bool),
                      {"source_layout": "nih-data-entry", "source_file": str(entry),
                       "label_rule": "rows with exactly one label in 'Finding Labels' ('No Finding' counts as "
                                     "one); rows with two or more labels dropped",
                       "rows": len(rows), "multi_label_rows_dropped": len(rows) - int(kept.size),
                       "unlisted_rows_dropped": unlisted})


def build_nih_cxr_lt(config: DataConfig) -> LongTailDataset:
    """Build ``nih-cxr-lt`` from ``config.data_root`` (see the module docstring)."""
    root = data_root(config, LAYOUT)
    if not root.is_dir():
        raise ValueError(f"data root {root} is not a folder; expected {LAYOUT}")
    lt_train = find_one(root, (f"{LT_PREFIX}train.csv", f"*/{LT_PREFIX}train.csv"), f"{LT_PREFIX}train.csv", LAYOUT)
    if lt_train is not None:
        return build_longtail("nih-cxr-lt", _pool_from_lt_csvs(root, lt_train, config), config)
    entry = find_one(root, ("Data_Entry_2017*.csv", "*/Data_Entry_2017*.csv", "Data_Entry_2017*.csv.gz"),
                     "Data_Entry_2017", LAYOUT)
    if entry is None:
        raise FileNotFoundError(f"neither {LT_PREFIX}train.csv nor Data_Entry_2017*.csv is under {root}; "
                                f"expected {LAYOUT}")
    return build_longtail("nih-cxr-lt", _pool_from_data_entry(root, entry, config), config)


# --- the real profile with synthetic pixels ----------------------------------------------------------------------

@lru_cache(maxsize=1)
def nih_profile() -> dict:
    """The shipped NIH ChestX-ray14 label table (``profiles/nih_chestxray14.json``) with its source."""
    return json.loads(PROFILE_FILE.read_text())


def _profile_builder(kind: str, name: str):
    def build(config: DataConfig) -> LongTailDataset:
        if config.profile == "exponential":
            raise ValueError(f"{name} has the real NIH profile (natural); it cannot be resampled to an exponential "
                             f"one (use --profile natural or leave it unset)")
        if config.test_split != "balanced":
            raise ValueError(f"{name} generates a balanced test split; --test-split natural is not available")
        counts = nih_profile()[kind]
        class_names = tuple(counts)
        train = np.asarray([counts[c] for c in class_names], dtype=np.int64)
        n_test = config.test_per_class or PROFILE_TEST_PER_CLASS
        k = len(class_names)
        labels = np.concatenate([np.repeat(np.arange(k), train), np.repeat(np.arange(k), n_test)])
        official = np.concatenate([np.zeros(int(train.sum()), dtype=bool), np.ones(k * n_test, dtype=bool)])
        generator = torch.Generator().manual_seed(config.seed)
        templates = F.interpolate(torch.rand(k, 1, 4, 4, generator=generator), size=(config.image_size,) * 2,
                                  mode="bilinear", align_corners=False)
        store = GeneratedStore(labels, templates, config.seed, PROFILE_NOISE_STD)
        pool = SourcePool(store, labels, class_names, official,
                          {"source_profile": kind, "source_file": str(PROFILE_FILE.name),
                           "profile_source": nih_profile()["source"], "test_same_distribution": True,
                           "test_distribution_note": "training and test pixels of a class are generated alike "
                                                     "(its template plus seeded noise per item), so class by "
                                                     "class both splits follow one distribution"},
                          default_profile="natural")
        return build_longtail(name, pool, config)
    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


build_nih_profile = _profile_builder("per_label", "nih-profile")
build_nih_profile_single = _profile_builder("single_label", "nih-profile-single")
