"""The registry of data sets: a name → builder table and the one function that builds from a DataConfig.

Adding a reader: write ``build_x(config: DataConfig) -> LongTailDataset`` (deterministic given the config, classes
ordered head first, see ``LongTailDataset``) and call ``register_dataset("x-lt", build_x)``.
"""

from __future__ import annotations

from typing import Callable

from scilt_theory.data.blood import build_bloodmnist
from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.digits import build_digits
from scilt_theory.data.imagefolder import build_imagefolder
from scilt_theory.data.isic import build_isic2019
from scilt_theory.data.nih import build_nih_cxr_lt, build_nih_profile, build_nih_profile_single
from scilt_theory.data.scitiles import build_scitiles
from scilt_theory.data.synthetic import build_synthetic

Builder = Callable[[DataConfig], LongTailDataset]

DATASETS: dict[str, Builder] = {
    "scitiles-lt": build_scitiles,
    "digits-lt": build_digits,
    "synthetic-lt": build_synthetic,
    "nih-profile": build_nih_profile,
    "nih-profile-single": build_nih_profile_single,
    "nih-cxr-lt": build_nih_cxr_lt,
    "isic2019": build_isic2019,
    "bloodmnist": build_bloodmnist,
    "imagefolder": build_imagefolder,
}
# Readers of a copy on disk (they need DataConfig.data_root); the other built-in names take none of the real-data
# options below, and refuse them rather than ignore them.
REAL_DATASETS = ("nih-cxr-lt", "isic2019", "bloodmnist", "imagefolder")
_REAL_ONLY = ("data_root", "test_root", "profile", "exclude_classes", "interpolation", "crop_pct")
_BUILT_IN_EMBEDDED = ("scitiles-lt", "digits-lt", "synthetic-lt")


def register_dataset(name: str, builder: Builder, *, replace: bool = False) -> Builder:
    """Add ``builder`` to DATASETS under ``name``; refuses to overwrite a name unless ``replace``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a data set name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise ValueError(f"the builder for {name!r} must be callable")
    if name in DATASETS and not replace:
        raise ValueError(f"a data set named {name!r} is already registered")
    DATASETS[name] = builder
    return builder


def build_dataset(config: DataConfig) -> LongTailDataset:
    """Build the data set ``config.name`` deterministically from ``config``."""
    if config.name not in DATASETS:
        raise ValueError(f"unknown data set {config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    default = DataConfig()
    if config.name in _BUILT_IN_EMBEDDED:
        given = [k for k in _REAL_ONLY + ("test_split", "test_fraction")
                 if getattr(config, k) != getattr(default, k)]
        if given:
            raise ValueError(f"{config.name} is an embedded data set; the option(s) "
                             f"{', '.join('--' + k.replace('_', '-') for k in given)} apply to real data sets only")
    elif config.name.startswith("nih-profile") and (config.data_root is not None or config.test_root is not None):
        raise ValueError(f"{config.name} reads no images (it ships its class counts); drop --data-root")
    if config.test_root is not None and config.name != "imagefolder":
        raise ValueError(f"--test-root applies to imagefolder only, not to {config.name}")
    data = DATASETS[config.name](config)
    if not isinstance(data, LongTailDataset):
        raise ValueError(f"the builder of {config.name!r} returned {type(data).__name__}, not a LongTailDataset")
    return data
