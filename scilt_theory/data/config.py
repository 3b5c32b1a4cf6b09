"""The data configuration recorded in run.pt (it names the split and its seed)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataConfig:
    """Which embedded long-tailed data set, with which profile and split seed."""

    name: str = field(default="scitiles-lt", metadata={"help": "data set name (see the list above)"})
    imbalance: float = field(default=100.0, metadata={"help": "imbalance factor n_max / n_min of the training "
                                                                "profile (>= 1)"})
    max_per_class: int | None = field(default=None, metadata={"help": "head-class size n_max (none = the data "
                                                                        "set's default)"})
    test_per_class: int | None = field(default=None, metadata={"help": "balanced test images per class (none = "
                                                                         "default)"})
    num_classes: int | None = field(default=None, metadata={"help": "number of classes where the data set allows "
                                                                      "a choice (synthetic-lt); none = default"})
    image_size: int = field(default=32, metadata={"help": "side of the square images fed to the model"})
    seed: int = field(default=0, metadata={"help": "split seed (fixed, recorded in run.pt)"})
    many_threshold: int = field(default=100, metadata={"help": "Many-shot classes have more training images "
                                                                 "than this"})
    few_threshold: int = field(default=20, metadata={"help": "Few-shot classes have fewer training images than "
                                                               "this"})

    def __post_init__(self) -> None:
        if not (self.imbalance >= 1.0 and self.imbalance < float("inf")):
            raise ValueError(f"imbalance must be a finite number >= 1, got {self.imbalance}")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ValueError(f"max_per_class must be at least 1, got {self.max_per_class}")
        if self.test_per_class is not None and self.test_per_class < 1:
            raise ValueError(f"test_per_class must be at least 1, got {self.test_per_class}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if not 8 <= self.image_size <= 1024:
            raise ValueError(f"image_size must lie in [8, 1024], got {self.image_size}")
        if self.few_threshold < 0 or self.few_threshold > self.many_threshold:
            raise ValueError(f"need 0 <= few_threshold <= many_threshold, got {self.few_threshold} and "
                             f"{self.many_threshold}")
