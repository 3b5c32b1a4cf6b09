"""The data configuration recorded in run.pt: which data set, its long-tail profile and its split seed."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field


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


def _is_int(value: object) -> bool:
    # numpy integers count; bool is an int subclass, but True as a size is a mistake
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
