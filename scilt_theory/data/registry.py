"""The registry of data sets: one ``DatasetSpec`` per name, and the one function that builds from a DataConfig.

Adding a reader: write ``build_x(config: DataConfig) -> LongTailDataset`` (deterministic given the config, classes
ordered head first, see ``LongTailDataset``) and register it with what it is::

    register_dataset(DatasetSpec("x-lt", build_x, reads_files=True, options=frozenset({"profile", "test_split"}),
                                 summary="my images"))

Everything the rest of the code needs to know about a data set comes from its spec, never from a side list:
``build_dataset`` refuses the DataConfig options the spec does not name, and ``experiments.train`` fills timm's
resize settings exactly for the specs with ``timm_preprocessing``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scilt_theory.data.blood import build_bloodmnist
from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.digits import build_digits
from scilt_theory.data.imagefolder import build_imagefolder
from scilt_theory.data.isic import build_isic2019
from scilt_theory.data.nih import build_nih_cxr_lt, build_nih_profile, build_nih_profile_single
from scilt_theory.data.population import build_scitiles_pop, law_of
from scilt_theory.data.scitiles import build_scitiles
from scilt_theory.data.synthetic import build_synthetic

Builder = Callable[[DataConfig], LongTailDataset]

# DataConfig fields every data set takes (its size, profile, seed and groups); the others apply only where a
# spec's ``options`` names them.
COMMON_OPTIONS = frozenset({"name", "imbalance", "max_per_class", "test_per_class", "num_classes", "image_size",
                            "seed", "many_threshold", "few_threshold"})
_FIELDS = frozenset(f.name for f in dataclasses.fields(DataConfig))
# what timm's data config of the model decides (experiments.train fills them for specs with timm_preprocessing)
TIMM_OPTIONS = frozenset({"interpolation", "crop_pct"})
# the options of a reader of a copy on disk whose split is built by scilt_theory/data/split.py
POOL_OPTIONS = frozenset({"profile", "test_split", "test_fraction", "exclude_classes"})


@dataclass(frozen=True)
class DatasetSpec:
    """What a registered data set is.

    name : the ``--dataset`` name.  builder : ``DataConfig -> LongTailDataset``.
    reads_files : True for a reader of a copy on disk (it needs ``data_root``, which is then implied in
        ``options``); False for a data set made from what is installed (it refuses ``data_root``). Required:
        a reader that does not say is refused.
    options : the DataConfig fields beyond ``COMMON_OPTIONS`` that apply; any other field given a value other than
        its default is refused by ``build_dataset`` rather than silently ignored.
    timm_preprocessing : its images are resized with the model's timm eval transform, so ``experiments.train``
        fills ``interpolation`` / ``crop_pct`` from the model (which are then implied in ``options``).
    summary : one line for listings.
    law : for a data set drawn from a stated law, ``DataConfig -> str``: the law as a sentence (every split an
        i.i.d. sample of it, so test errors estimate its population errors); None for a finite pool or a copy on
        disk, which states no law.
    """

    name: str
    builder: Builder
    reads_files: bool
    options: frozenset[str] = frozenset()
    timm_preprocessing: bool = False
    summary: str = ""
    law: Callable[[DataConfig], str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a data set name must be a non-empty string, got {self.name!r}")
        if not callable(self.builder):
            raise ValueError(f"the builder for {self.name!r} must be callable")
        for key in ("reads_files", "timm_preprocessing"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"the spec of {self.name!r} must say whether it {key.replace('_', ' ')} "
                                 f"(True or False), got {getattr(self, key)!r}")
        if isinstance(self.options, str) or not isinstance(self.options, Iterable):
            raise ValueError(f"options of {self.name!r} must be a set of DataConfig field names, got "
                             f"{self.options!r}")
        options = frozenset(self.options)
        unknown = sorted(options - _FIELDS)
        if unknown:
            raise ValueError(f"options of {self.name!r} name no DataConfig field: {', '.join(unknown)}")
        common = sorted(options & COMMON_OPTIONS)
        if common:
            raise ValueError(f"options of {self.name!r} list {', '.join(common)}, which every data set takes; "
                             f"name only the options beyond {sorted(COMMON_OPTIONS)}")
        if self.reads_files:
            options |= {"data_root"}
        elif options & {"data_root", "test_root"}:
            raise ValueError(f"{self.name!r} says it reads no files but takes "
                             f"{', '.join(sorted(options & {'data_root', 'test_root'}))}")
        if self.timm_preprocessing:
            options |= TIMM_OPTIONS
        if not isinstance(self.summary, str):
            raise ValueError(f"the summary of {self.name!r} must be a string")
        if self.law is not None and not callable(self.law):
            raise ValueError(f"the law of {self.name!r} must be None or callable (DataConfig -> sentence)")
        object.__setattr__(self, "options", options)

    def accepts(self, option: str) -> bool:
        return option in COMMON_OPTIONS or option in self.options


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec | str, builder: Builder | None = None, *, replace: bool = False,
                     **fields) -> DatasetSpec:
    """Add a data set to DATASETS; refuses to overwrite a name unless ``replace``.

    ``register_dataset(DatasetSpec(...))``, or ``register_dataset(name, builder, reads_files=..., options=...,
    timm_preprocessing=..., summary=...)``; either way the spec must say whether the reader reads files.
    """
    if not isinstance(spec, DatasetSpec):
        if "reads_files" not in fields:
            raise ValueError(f"register {spec!r} with reads_files=True (a reader of a copy on disk, given "
                             f"--data-root) or reads_files=False (made from what is installed); a data set that "
                             f"does not say which is refused")
        spec = DatasetSpec(spec, builder, **fields)
    elif builder is not None or fields:
        raise ValueError("pass either a DatasetSpec or a name, a builder and the spec's fields, not both")
    if spec.name in DATASETS and not replace:
        raise ValueError(f"a data set named {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


for _spec in (
        DatasetSpec("scitiles-pop", build_scitiles_pop, reads_files=False,
                    options=frozenset({"crop_size", "photons", "read_noise"}),
                    summary="a stated law of noisy crops of 9 of scikit-image's bundled scientific images; every split "
                            "an i.i.d. draw (embedded, the default and the demo's)",
                    law=lambda config: law_of(config).sentence()),
        DatasetSpec("scitiles-lt", build_scitiles, reads_files=False,
                    summary="legacy: block-split patches of the same 9 images (splits not i.i.d.; kept for old runs)"),
        DatasetSpec("digits-lt", build_digits, reads_files=False,
                    summary="scikit-learn's bundled 8 x 8 handwritten digits (embedded)"),
        DatasetSpec("synthetic-lt", build_synthetic, reads_files=False,
                    summary="seeded class patterns plus noise (embedded, for fast tests)"),
        DatasetSpec("nih-profile", build_nih_profile, reads_files=False,
                    options=frozenset({"profile", "test_split", "exclude_classes"}),
                    summary="the NIH ChestX-ray14 per-label class counts with synthetic pixels"),
        DatasetSpec("nih-profile-single", build_nih_profile_single, reads_files=False,
                    options=frozenset({"profile", "test_split", "exclude_classes"}),
                    summary="the NIH ChestX-ray14 single-label class counts with synthetic pixels"),
        DatasetSpec("nih-cxr-lt", build_nih_cxr_lt, reads_files=True, options=POOL_OPTIONS, timm_preprocessing=True,
                    summary="NIH ChestX-ray14 / NIH-CXR-LT from --data-root"),
        DatasetSpec("isic2019", build_isic2019, reads_files=True, options=POOL_OPTIONS, timm_preprocessing=True,
                    summary="ISIC 2019 from --data-root"),
        DatasetSpec("bloodmnist", build_bloodmnist, reads_files=True, options=POOL_OPTIONS, timm_preprocessing=True,
                    summary="BloodMNIST (.npz) or PBC (cell-type folders) from --data-root"),
        DatasetSpec("imagefolder", build_imagefolder, reads_files=True, options=POOL_OPTIONS | {"test_root"},
                    timm_preprocessing=True, summary="any class-folder tree under --data-root (and --test-root)")):
    register_dataset(_spec)


def _flags(keys: list[str]) -> str:
    return ", ".join("--" + k.replace("_", "-") for k in keys)


def _refusal(spec: DatasetSpec, given: list[str]) -> str:
    """The sentence refusing the options ``given`` that do not apply to ``spec``, naming where they do apply."""
    takers = sorted(n for n, s in DATASETS.items() if all(s.accepts(k) for k in given))
    if not spec.reads_files:
        if takers and all(DATASETS[n].reads_files for n in takers):
            where = f"real data sets read from --data-root ({', '.join(takers)})"
        else:
            where = ", ".join(takers) or "no registered data set"
        return (f"{spec.name} is an embedded data set (it reads no files); the option(s) {_flags(given)} apply to "
                f"{where} only")
    verb = "applies" if len(given) == 1 else "apply"
    return f"{_flags(given)} {verb} to {', '.join(takers) or 'no registered data set'} only, not to {spec.name}"


def build_dataset(config: DataConfig) -> LongTailDataset:
    """Build the data set ``config.name`` deterministically from ``config``.

    Refuses a DataConfig field set to a value other than its default where the data set's spec does not list it
    (e.g. ``data_root`` for an embedded data set), rather than ignoring it.
    """
    if config.name not in DATASETS:
        raise ValueError(f"unknown data set {config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    spec = DATASETS[config.name]
    default = DataConfig()
    given = [f.name for f in dataclasses.fields(DataConfig)
             if not spec.accepts(f.name) and getattr(config, f.name) != getattr(default, f.name)]
    if given:
        raise ValueError(_refusal(spec, given))
    data = spec.builder(config)
    if not isinstance(data, LongTailDataset):
        raise ValueError(f"the builder of {config.name!r} returned {type(data).__name__}, not a LongTailDataset")
    return data
