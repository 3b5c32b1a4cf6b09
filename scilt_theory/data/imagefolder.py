"""``imagefolder``: any ``root/<class name>/<image files>`` tree (torchvision's ImageFolder layout).

- Classes are the sub-folders of ``data_root`` (hidden ones skipped), in alphabetical order as the source order;
  images are the files with an image suffix (``scilt_theory.data.images.IMAGE_SUFFIXES``) anywhere below a class
  folder. An empty class folder is dropped and named: ``provenance["dropped_classes"]`` and a sentence in
  ``provenance["notes"]``, which ``experiments.train`` and ``experiments.data`` print.
- Every image is kept by default (``--profile natural``); ``--profile exponential`` (or ``--imbalance`` on the
  command line) subsamples to a long-tail profile, and the notes say how many images it left out.
- ``test_root`` (optional): a second tree of the same form holding the official test images; each of its classes
  must be a class of ``data_root``. Without it the test split is held out of ``data_root`` (``split.py``).
- Images are decoded lazily (``LazyImages``), grey and 16-bit handled, resized with timm's eval transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.files import data_root
from scilt_theory.data.images import IMAGE_SUFFIXES, list_images, preprocess_from_config
from scilt_theory.data.lazy import FileStore
from scilt_theory.data.split import SourcePool, build_longtail

LAYOUT = "root/<class name>/<image files: " + ", ".join(IMAGE_SUFFIXES) + ">"


def scan_class_folders(root: Path, what: str = "data root") -> tuple[list[str], list[list[Path]]]:
    """Class names (sorted sub-folders) and the sorted image files of each under ``root``."""
    if not root.is_dir():
        raise ValueError(f"{what} {root} is not a folder; expected {LAYOUT}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{what} {root} has no class sub-folders; expected {LAYOUT}")
    files = [list_images(root / name) for name in classes]
    if not any(files):
        raise ValueError(f"the class folders of {what} {root} hold no image files; expected {LAYOUT}")
    return classes, files


def pool_from_class_folders(root: Path, test_root: Path | None, config: DataConfig, name: str) -> SourcePool:
    classes, files = scan_class_folders(root)
    paths = [p for group in files for p in group]
    labels = [c for c, group in enumerate(files) for _ in group]
    official = None
    if test_root is not None:
        test_classes, test_files = scan_class_folders(test_root, "test root")
        unknown = [c for c in test_classes if c not in classes]
        if unknown:
            raise ValueError(f"test root {test_root} has class folder(s) {', '.join(map(repr, unknown))} that "
                             f"{root} lacks; both trees need the same class names")
        official = np.zeros(len(paths), dtype=bool)
        for c_name, group in zip(test_classes, test_files):
            paths += group
            labels += [classes.index(c_name)] * len(group)
        official = np.concatenate([official, np.ones(len(paths) - official.size, dtype=bool)])
    store = FileStore([str(p) for p in paths], preprocess_from_config(config), root=str(root))
    source = {"source_root": str(root), "source_test_root": None if test_root is None else str(test_root)}
    return SourcePool(store, np.asarray(labels, dtype=np.int64), tuple(classes), official, source)


def build_imagefolder(config: DataConfig) -> LongTailDataset:
    """Build ``imagefolder`` from ``config.data_root`` (and ``config.test_root``); deterministic given config."""
    root = data_root(config, LAYOUT)
    test_root = None
    if config.test_root is not None:
        test_root = Path(config.test_root).expanduser()
        if not test_root.exists():
            raise FileNotFoundError(f"test root {test_root} does not exist (expected {LAYOUT})")
    return build_longtail("imagefolder", pool_from_class_folders(root, test_root, config, "imagefolder"), config)
