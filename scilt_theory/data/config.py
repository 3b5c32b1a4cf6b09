"""The data configuration recorded in run.pt: which data set, its long-tail profile and its split seed.

Real data sets (``nih-cxr-lt``, ``isic2019``, ``bloodmnist``, ``imagefolder``) are read from ``data_root``; their
images are decoded lazily, resized with ``interpolation`` / ``crop_pct`` (timm's evaluation transform of the model,
filled in by ``experiments.train``). See ``scilt_theory/data/split.py`` for how the pools become a long-tailed split.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
PROFILES = ("exponential", "natural")
TEST_SPLITS = ("balanced", "natural")


@dataclass(frozen=True)
class DataConfig:
    """Which long-tailed data set to build, with which training profile and split seed.

    The same config always builds the same tensors (``build_dataset`` is deterministic), so storing it in run.pt
    is enough to re-create the exact split. Unknown names are refused by ``build_dataset`` (the registry can grow
    after a config was made), everything else here.
    """

    name: str = field(default="scitiles-lt", metadata={"help": "data set name (see the list above)"})
    imbalance: float = field(default=100.0, metadata={"help": "imbalance factor n_max / n_min of the training "
                                                                "profile (>= 1)"})
    max_per_class: int | None = field(default=None, metadata={"help": "head-class size n_max (none = the data "
                                                                        "set's default)"})
    test_per_class: int | None = field(default=None, metadata={"help": "balanced test images per class (none = "
                                                                         "default)"})
    num_classes: int | None = field(default=None, metadata={"help": "number of classes, where the data set "
                                                                      "allows a choice (the first K of its "
                                                                      "fixed order); none = all / default"})
    image_size: int = field(default=32, metadata={"help": "side of the square images fed to the model"})
    seed: int = field(default=0, metadata={"help": "split seed (fixed, recorded in run.pt)"})
    many_threshold: int = field(default=100, metadata={"help": "Many-shot classes have more training images "
                                                                 "than this"})
    few_threshold: int = field(default=20, metadata={"help": "Few-shot classes have fewer training images than "
                                                               "this"})
    data_root: str | None = field(default=None, metadata={"help": "folder (or .npz file) of a real data set "
                                                                   "(nih-cxr-lt, isic2019, bloodmnist, imagefolder)"})
    test_root: str | None = field(default=None, metadata={"help": "imagefolder only: a separate class-folder tree "
                                                                   "holding the test images"})
    profile: str | None = field(default=None, metadata={
        "help": "training profile of a real data set: exponential (subsample to --imbalance) or natural (keep "
                "the data set's own counts, scaled down to --max-per-class if given); none = the data set's "
                "default (exponential, natural for nih-profile)"})
    test_split: str = field(default="balanced", metadata={
        "help": "test split of a real data set: balanced (--test-per-class images of every class) or natural "
                "(the official test split, or a stratified --test-fraction of every class)"})
    test_fraction: float = field(default=0.2, metadata={
        "help": "share of every class held out for a natural test split when the data set has no official one"})
    exclude_classes: tuple[str, ...] = field(default=(), metadata={
        "help": "class names of a real data set to leave out (e.g. 'No Finding')"})
    interpolation: str | None = field(default=None, metadata={
        "help": f"resize interpolation of real images, one of {INTERPOLATIONS}; none = the model's timm data "
                f"config (experiments.train fills it in), bicubic for library callers"})
    crop_pct: float | None = field(default=None, metadata={
        "help": "centre-crop fraction of timm's eval transform (short side resized to image_size / crop_pct, "
                "then a centre crop); none = the model's timm data config, 1.0 (no crop) for library callers"})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty data set name, got {self.name!r}")
        real = isinstance(self.imbalance, numbers.Real) and not isinstance(self.imbalance, bool)
        if not (real and math.isfinite(self.imbalance) and self.imbalance >= 1):
            raise ValueError(f"imbalance must be a finite number >= 1 (n_max / n_min), got {self.imbalance}")
        for key in ("max_per_class", "test_per_class"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{key} must be a whole number of at least 1 (or None), got {value!r}")
        if self.num_classes is not None and (not _is_int(self.num_classes) or self.num_classes < 2):
            raise ValueError(f"num_classes must be a whole number of at least 2 (or None), got {self.num_classes!r}")
        if not _is_int(self.image_size) or not 8 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be a whole number of pixels in [8, 1024], got {self.image_size!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative whole number, got {self.seed!r}")
        if not (_is_int(self.few_threshold) and _is_int(self.many_threshold)) or \
                not 0 <= self.few_threshold <= self.many_threshold:
            raise ValueError(f"the thresholds need 0 <= few_threshold <= many_threshold, got few_threshold "
                             f"{self.few_threshold!r} and many_threshold {self.many_threshold!r}")
        for key in ("data_root", "test_root"):
            value = getattr(self, key)
            if not isinstance(value, (str, type(None))) and hasattr(value, "__fspath__"):
                object.__setattr__(self, key, str(value))  # a pathlib.Path is stored as text (JSON, run.pt)
            elif value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{key} must be a path or None, got {value!r}")
        if self.profile is not None and self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES} (or None), got {self.profile!r}")
        if self.test_split not in TEST_SPLITS:
            raise ValueError(f"test_split must be one of {TEST_SPLITS}, got {self.test_split!r}")
        real_fraction = isinstance(self.test_fraction, numbers.Real) and not isinstance(self.test_fraction, bool)
        if not (real_fraction and 0 < self.test_fraction < 1):
            raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction!r}")
        excluded = self.exclude_classes
        if isinstance(excluded, str):
            excluded = (excluded,)
        if not isinstance(excluded, (tuple, list)) or not all(isinstance(c, str) and c for c in excluded):
            raise ValueError(f"exclude_classes must be a tuple of class names, got {self.exclude_classes!r}")
        object.__setattr__(self, "exclude_classes", tuple(excluded))
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS} (or None), got {self.interpolation!r}")
        if self.crop_pct is not None:
            real_crop = isinstance(self.crop_pct, numbers.Real) and not isinstance(self.crop_pct, bool)
            if not (real_crop and 0.1 <= self.crop_pct <= 1.0):
                raise ValueError(f"crop_pct must lie in [0.1, 1] (or None), got {self.crop_pct!r}")


def _is_int(value: object) -> bool:
    # numpy integers count; bool is an int subclass, but True as a size is a mistake
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
