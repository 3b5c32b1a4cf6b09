"""The data configuration recorded in run.pt: which data set, its long-tail profile and its split seed.

Real data sets (``nih-cxr-lt``, ``isic2019``, ``bloodmnist``, ``imagefolder``) are read from ``data_root``; their
images are decoded lazily, resized with ``interpolation`` / ``crop_pct`` (timm's evaluation transform of the model,
filled in by ``experiments.train``). See ``scilt_theory/data/split.py`` for how the pools become a long-tailed split.

What a single field accepts is declared beside its help text (``scilt_theory.constraints.option``) and checked by
``check_fields``, which words every refusal as "<field> must be <what it accepts>, got <value>"; which fields apply to
which data set is the registry's business (``DatasetSpec.options``).
"""

from __future__ import annotations

from dataclasses import dataclass

from scilt_theory.constraints import Choice, Interval, NoneOr, Text, TupleOf, check_fields, option
from scilt_theory.metrics import check_group_thresholds

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

    name: str = option("scitiles-pop", "data set name (see the list above)", Text())
    imbalance: float = option(100.0, "imbalance factor n_max / n_min of the training profile",
                              Interval(float, 1, None))
    max_per_class: int | None = option(None, "head-class size n_max (none = the data set's default)",
                                       NoneOr(Interval(int, 1, None)))
    test_per_class: int | None = option(None, "balanced test images per class (none = default)",
                                        NoneOr(Interval(int, 1, None)))
    num_classes: int | None = option(None, "number of classes, where the data set allows a choice (the first K of "
                                           "its fixed order); none = all / default", NoneOr(Interval(int, 2, None)))
    image_size: int = option(32, "side of the square images fed to the model", Interval(int, 8, 1024))
    seed: int = option(0, "split seed (fixed, recorded in run.pt)", Interval(int, 0, None))
    many_threshold: int = option(100, "Many-shot classes have more training images than this",
                                 Interval(int, 0, None))
    few_threshold: int = option(20, "Few-shot classes have fewer training images than this",
                                Interval(int, 0, None))
    crop_size: int | None = option(None, "scitiles-pop: crop side in source pixels of the stated law (none = 48)",
                                   NoneOr(Interval(int, 8, 512)))
    photons: float | None = option(None, "scitiles-pop: photons at full scale of the Poisson-Gaussian acquisition "
                                         "noise (fewer = noisier; none = the default law)",
                                   NoneOr(Interval(float, 0, None, closed="right")))
    read_noise: float | None = option(None, "scitiles-pop: read-noise standard deviation of the acquisition noise "
                                            "(none = the default law)", NoneOr(Interval(float, 0, 1)))
    data_root: str | None = option(None, "folder (or .npz file) of a real data set (nih-cxr-lt, isic2019, "
                                         "bloodmnist, imagefolder)", NoneOr(Text()))
    test_root: str | None = option(None, "imagefolder only: a separate class-folder tree holding the test images",
                                   NoneOr(Text()))
    profile: str | None = option(
        None, "training profile of a real data set: exponential (subsample to --imbalance) or natural (keep the "
              "data set's own counts, scaled down to --max-per-class if given); none = natural: every image is kept "
              "(experiments.train and data take exponential when --imbalance is given)", NoneOr(Choice(PROFILES)))
    test_split: str = option(
        "balanced", "test split of a real data set: balanced (--test-per-class images of every class) or natural "
                    "(the official test split, or a stratified --test-fraction of every class)", Choice(TEST_SPLITS))
    test_fraction: float = option(
        0.2, "share of every class held out for a natural test split when the data set has no official one",
        Interval(float, 0, 1, closed="neither"))
    exclude_classes: tuple[str, ...] = option(
        (), "class names of a real data set to leave out (e.g. 'No Finding')", TupleOf(Text(), min_len=0))
    interpolation: str | None = option(
        None, f"resize interpolation of real images, one of {INTERPOLATIONS}; none = the model's timm data config "
              f"(experiments.train fills it in), bicubic for library callers", NoneOr(Choice(INTERPOLATIONS)))
    crop_pct: float | None = option(
        None, "centre-crop fraction of timm's eval transform (short side resized to image_size / crop_pct, then a "
              "centre crop); none = the model's timm data config, 1.0 (no crop) for library callers",
        NoneOr(Interval(float, 0.1, 1.0)))

    def __post_init__(self) -> None:
        # normalisations first (they only change the type of an accepted value), then the declared constraints,
        # then the one check that combines fields
        for key in ("data_root", "test_root"):
            value = getattr(self, key)
            if not isinstance(value, (str, type(None))) and hasattr(value, "__fspath__"):
                object.__setattr__(self, key, str(value))  # a pathlib.Path is stored as text (JSON, run.pt)
        excluded = self.exclude_classes
        if isinstance(excluded, str):
            object.__setattr__(self, "exclude_classes", (excluded,))
        elif isinstance(excluded, list):
            object.__setattr__(self, "exclude_classes", tuple(excluded))  # a JSON round trip gives a list
        check_fields(self)
        check_group_thresholds(self.many_threshold, self.few_threshold)
