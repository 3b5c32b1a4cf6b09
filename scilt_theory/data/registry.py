"""The registry of data sets: a name → builder table and the one function that builds from a DataConfig.

Adding a reader: write ``build_x(config: DataConfig) -> LongTailDataset`` (deterministic given the config, classes
ordered head first, see ``LongTailDataset``) and call ``register_dataset("x-lt", build_x)``.
"""

from __future__ import annotations

from typing import Callable

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.digits import build_digits
from scilt_theory.data.scitiles import build_scitiles
from scilt_theory.data.synthetic import build_synthetic

Builder = Callable[[DataConfig], LongTailDataset]

DATASETS: dict[str, Builder] = {
    "scitiles-lt": build_scitiles,
    "digits-lt": build_digits,
    "synthetic-lt": build_synthetic,
}


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
    data = DATASETS[config.name](config)
    if not isinstance(data, LongTailDataset):
        raise ValueError(f"the builder of {config.name!r} returned {type(data).__name__}, not a LongTailDataset")
    return data
