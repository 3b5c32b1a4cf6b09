"""``bloodmnist``: peripheral blood cell images, as MedMNIST's BloodMNIST ``.npz`` or the PBC folder layout.

Sources (both 8 classes, the same 17 092 images of Acevedo et al., Data in Brief 30, 2020):

- BloodMNIST (MedMNIST v2, Yang et al. 2023, https://medmnist.com): ``bloodmnist.npz`` (28 px) or
  ``bloodmnist_64.npz`` / ``_128`` / ``_224``, with arrays ``train_images`` (N, H, W, 3) uint8 and
  ``train_labels`` (N, 1), and the same for ``val_*`` / ``test_*``. ``data_root`` is the .npz file, or a folder
  holding one or several sizes; of several, the smallest side ≥ ``image_size`` is used (the largest if none is).
  The training pool is ``train_*``, the official test split ``test_*``; ``val_*`` is not used (nothing here does
  model selection). Class names follow MedMNIST's label order (``BLOODMNIST_CLASSES``).
- PBC (https://data.mendeley.com/datasets/snkd93bnjr/1): ``PBC_dataset_normal_DIB/<cell type>/*.jpg`` with the
  folders basophil, eosinophil, erythroblast, ig, lymphocyte, monocyte, neutrophil, platelet. ``data_root`` is that
  folder or its parent; the classes are the folder names (read like ``imagefolder``), the test split is held out.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.files import data_root
from scilt_theory.data.imagefolder import pool_from_class_folders
from scilt_theory.data.images import preprocess_from_config
from scilt_theory.data.lazy import ArrayStore
from scilt_theory.data.split import SourcePool, build_longtail

BLOODMNIST_CLASSES = ("basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte", "monocyte",
                      "neutrophil", "platelet")  # MedMNIST label 3: "immature granulocytes (myelocytes, …)"
PBC_FOLDER = "PBC_dataset_normal_DIB"
LAYOUT = ("a MedMNIST bloodmnist[_SIZE].npz (train_images, train_labels, test_images, test_labels) or the PBC "
          f"layout {PBC_FOLDER}/<cell type>/*.jpg")
_NPZ_NAME = re.compile(r"^bloodmnist(?:_(\d+))?\.npz$")


def npz_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an .npz file, read from the .npy headers (nothing is decompressed)."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                    else:  # a rarer header version: read the array itself
                        handle.seek(0)
                        array = np.lib.format.read_array(handle)
                        shape, dtype = array.shape, array.dtype
                shapes[member[:-4]] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"cannot read {path} as an .npz archive: {exc}") from None
    return shapes


def choose_npz(folder: Path, image_size: int) -> Path | None:
    """Of the bloodmnist*.npz files in ``folder``: the smallest side ≥ image_size, else the largest."""
    sized = []
    for path in folder.iterdir():
        match = _NPZ_NAME.match(path.name)
        if match and path.is_file():
            sized.append((int(match.group(1) or 28), path))
    if not sized:
        return None
    sized.sort()
    large_enough = [item for item in sized if item[0] >= image_size]
    return (large_enough[0] if large_enough else sized[-1])[1]


def pool_from_npz(path: Path, config: DataConfig) -> SourcePool:
    shapes = npz_shapes(path)
    need = ("train_images", "train_labels", "test_images", "test_labels")
    missing = [key for key in need if key not in shapes]
    if missing:
        raise ValueError(f"{path} lacks the array(s) {', '.join(missing)}; expected MedMNIST's "
                         f"{', '.join(need)} (it holds {', '.join(sorted(shapes)) or 'none'})")
    parts, labels = [], []
    with np.load(path) as archive:
        for split in ("train", "test"):
            (n, *pixel_shape), dtype = shapes[f"{split}_images"]
            split_labels = np.asarray(archive[f"{split}_labels"]).reshape(-1).astype(np.int64)
            if len(pixel_shape) not in (2, 3) or dtype not in (np.uint8, np.uint16):
                raise ValueError(f"{path}: {split}_images has shape {(n, *pixel_shape)} and type {dtype}; expected "
                                 f"(N, H, W) or (N, H, W, C) uint8")
            if split_labels.size != n:
                raise ValueError(f"{path}: {split}_labels has {split_labels.size} labels for {n} {split}_images")
            if split_labels.size and (split_labels.min() < 0 or split_labels.max() >= len(BLOODMNIST_CLASSES)):
                raise ValueError(f"{path}: {split}_labels must lie in [0, {len(BLOODMNIST_CLASSES)}), got "
                                 f"[{split_labels.min()}, {split_labels.max()}]")
            parts.append((f"{split}_images", n))
            labels.append(split_labels)
    official = np.concatenate([np.zeros(parts[0][1], dtype=bool), np.ones(parts[1][1], dtype=bool)])
    store = ArrayStore(str(path), parts, preprocess_from_config(config))
    return SourcePool(store, np.concatenate(labels), BLOODMNIST_CLASSES, official,
                      {"source_file": str(path), "source_layout": "medmnist-npz",
                       "source_image_shape": list(shapes["train_images"][0][1:])})


def build_bloodmnist(config: DataConfig) -> LongTailDataset:
    """Build ``bloodmnist`` from an .npz file or a PBC folder (see the module docstring)."""
    root = data_root(config, LAYOUT)
    if root.is_file():
        if root.suffix != ".npz":
            raise ValueError(f"data root {root} is a file but not an .npz archive; expected {LAYOUT}")
        return build_longtail("bloodmnist", pool_from_npz(root, config), config)
    npz = choose_npz(root, config.image_size)
    if npz is not None:
        return build_longtail("bloodmnist", pool_from_npz(npz, config), config)
    folder = root / PBC_FOLDER if (root / PBC_FOLDER).is_dir() else root
    has_classes = any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir())
    if not has_classes:
        raise FileNotFoundError(f"{root} holds neither a bloodmnist*.npz file nor cell-type folders; expected {LAYOUT}")
    pool = pool_from_class_folders(folder, None, config, "bloodmnist")
    pool.source["source_layout"] = "pbc-folders"
    return build_longtail("bloodmnist", pool, config)
