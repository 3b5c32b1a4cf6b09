"""Builders of small data sets in the real on-disk formats (NIH, NIH-CXR-LT, ISIC 2019, MedMNIST, PBC, ImageFolder).

Every image is tiny (a class-dependent brightness plus a little noise) so a model can tell the classes apart and
the files stay a few hundred bytes. Used by test_readers.py and test_data_cli.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

TINY = (20, 24)  # (height, width): non-square on purpose, so the resize + centre crop does something


def pixels(level: float, rng: np.random.Generator, channels: int = 0, size=TINY, bits: int = 8) -> np.ndarray:
    """A (H, W) or (H, W, C) image around ``level`` in [0, 1], as uint8 or uint16."""
    top = 255 if bits == 8 else 65535
    shape = size if channels == 0 else (*size, channels)
    values = np.clip(level + 0.05 * rng.standard_normal(shape), 0, 1)
    return np.round(values * top).astype(np.uint8 if bits == 8 else np.uint16)


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def image_folder(root: Path, counts: dict[str, int], seed: int = 0, kinds=("L", "RGB")) -> dict[str, list[Path]]:
    """root/<class>/<i>.png with ``counts`` images per class; image i of a class has kind kinds[i % len]."""
    rng = np.random.default_rng(seed)
    files: dict[str, list[Path]] = {}
    for c, (name, n) in enumerate(counts.items()):
        level = 0.15 + 0.7 * c / max(1, len(counts) - 1)
        files[name] = []
        for i in range(n):
            kind = kinds[i % len(kinds)]
            if kind == "L":
                array = pixels(level, rng)
            elif kind == "I;16":
                array = pixels(level, rng, bits=16)
            elif kind == "RGBA":
                array = np.concatenate([pixels(level, rng, 3), np.zeros((*TINY, 1), np.uint8)], axis=-1)
            else:
                array = pixels(level, rng, 3)
            suffix = ".jpg" if kind == "JPEG" else ".png"
            files[name].append(save(root / name / f"{name}_{i:03d}{suffix}", array))
    return files


# --- NIH ChestX-ray14 --------------------------------------------------------------------------------------------

NIH_ROWS = {  # Finding Labels → (number of rows); multi-label rows must be dropped by the single-label rule
    "No Finding": 14, "Infiltration": 10, "Effusion": 8, "Hernia": 5,
    "Infiltration|Effusion": 3, "Effusion|Hernia|Mass": 2, "Mass": 6,
}
NIH_SINGLE = {"No Finding": 14, "Infiltration": 10, "Effusion": 8, "Mass": 6, "Hernia": 5}


def nih_release(root: Path, seed: int = 0, *, lists: bool = True, test_every: int = 3) -> dict[str, str]:
    """Data_Entry_2017_v2020.csv, images in images_001/images and images_002/images, the split lists.

    Every ``test_every``-th row of each label goes to test_list.txt. Returns image name → Finding Labels.
    """
    rng = np.random.default_rng(seed)
    rows, labels_of, train, test = [], {}, [], []
    k = 0
    for c, (labels, n) in enumerate(NIH_ROWS.items()):
        for i in range(n):
            name = f"{k:08d}_000.png"
            folder = "images_001" if k % 2 == 0 else "images_002"
            kind = i % 3
            level = 0.1 + 0.12 * c
            array = (pixels(level, rng) if kind == 0 else pixels(level, rng, bits=16) if kind == 1
                     else np.concatenate([pixels(level, rng, 3), np.full((*TINY, 1), 255, np.uint8)], axis=-1))
            save(root / folder / "images" / name, array)
            rows.append([name, labels, 0, k, 50, "M", "PA", TINY[1], TINY[0], 0.143, 0.143])
            labels_of[name] = labels
            (test if i % test_every == test_every - 1 else train).append(name)
            k += 1
    write_csv(root / "Data_Entry_2017_v2020.csv",
              ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Sex",
               "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"], rows)
    if lists:
        (root / "train_val_list.txt").write_text("\n".join(train) + "\n")
        (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return labels_of


LT_CLASSES = ["Atelectasis", "Hernia", "Pneumomediastinum", "No Finding"]


def nih_cxr_lt(root: Path, train_counts: dict[str, int], test_counts: dict[str, int], seed: int = 0,
               balanced_test: int | None = None) -> None:
    """NIH-CXR-LT split CSVs (id, one-hot classes, subject_id) in root/LongTailCXR and images in root/images."""
    rng = np.random.default_rng(seed)
    k = 0

    def table(counts: dict[str, int]) -> list[list]:
        nonlocal k
        rows = []
        for name, n in counts.items():
            c = LT_CLASSES.index(name)
            for _ in range(n):
                image = f"{k:08d}_001.png"
                save(root / "images" / image, pixels(0.1 + 0.25 * c, rng))
                rows.append([image] + [int(j == c) for j in range(len(LT_CLASSES))] + [k])
                k += 1
        return rows

    header = ["id"] + LT_CLASSES + ["subject_id"]
    write_csv(root / "LongTailCXR" / "nih-cxr-lt_single-label_train.csv", header, table(train_counts))
    write_csv(root / "LongTailCXR" / "nih-cxr-lt_single-label_test.csv", header, table(test_counts))
    if balanced_test:
        write_csv(root / "LongTailCXR" / "nih-cxr-lt_single-label_balanced-test.csv", header,
                  table({name: balanced_test for name in LT_CLASSES}))


# --- ISIC 2019 ---------------------------------------------------------------------------------------------------

ISIC = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]


def isic2019(root: Path, counts: dict[str, int], seed: int = 0) -> dict[str, str]:
    """ISIC_2019_Training_GroundTruth.csv (floats 0.0/1.0) and ISIC_2019_Training_Input/<image>.jpg."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    k = 0
    for name, n in counts.items():
        c = ISIC.index(name)
        for _ in range(n):
            image = f"ISIC_{k:07d}"
            save(root / "ISIC_2019_Training_Input" / f"{image}.jpg", pixels(0.1 + 0.1 * c, rng, 3))
            rows.append([image] + [f"{float(j == c):.1f}" for j in range(len(ISIC))])
            truth[image] = name
            k += 1
    write_csv(root / "ISIC_2019_Training_GroundTruth.csv", ["image"] + ISIC, rows)
    return truth


# --- BloodMNIST / PBC --------------------------------------------------------------------------------------------

def bloodmnist_npz(path: Path, train_counts: list[int], test_counts: list[int], side: int = 28,
                   seed: int = 0) -> Path:
    """A MedMNIST-style npz: {train,val,test}_images (N, side, side, 3) uint8 and *_labels (N, 1) uint8."""
    rng = np.random.default_rng(seed)

    def split(counts: list[int]):
        labels = np.repeat(np.arange(len(counts)), counts).astype(np.uint8)
        images = np.stack([pixels(0.1 + 0.1 * int(y), rng, 3, size=(side, side)) for y in labels]) if labels.size \
            else np.zeros((0, side, side, 3), np.uint8)
        return images, labels[:, None]

    arrays = {}
    for name, counts in (("train", train_counts), ("val", [1] * len(train_counts)), ("test", test_counts)):
        arrays[f"{name}_images"], arrays[f"{name}_labels"] = split(counts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
