"""``scitiles-pop``: the embedded default as a stated law P_c per class, from which every split is an i.i.d. draw.

The law (docs/THEORY.md §0, "The embedded population"). Class c is the c-th scikit-image sample of
``SCITILES_SOURCES`` (grey scale in [0, 1], bundled with scikit-image, no download). One draw X ~ P_c is:

1. **Geometry.** An origin (y, x) uniform over the integer positions at which a ``crop_size`` square lies wholly
   inside the class's *population region* — the source minus its rightmost ``SHIFT_FRACTION`` of columns (the
   *shift region*, reserved) — a rotation by k · 90°, k uniform on {0, 1, 2, 3}, and a left-right flip, uniform on
   {0, 1}. A crop whose source pixels have standard deviation below ``MIN_PATCH_STD`` (nearly flat, e.g. the black
   border of the retina) is redrawn: P_c is that law conditioned on a textured crop.
2. **Optics.** The oriented crop is resized to ``image_size`` (bilinear, antialiased): v ∈ [0, 1]^{S×S}.
3. **Acquisition noise** (Poisson–Gaussian, the standard model of a photon-counting detector with read-out noise):
   z = Poisson(``photons`` · v) / ``photons`` + N(0, ``read_noise``²) per pixel, clipped to [0, 1], replicated to
   3 channels.

Splits. Every split draws its images of class c from its own generator streams, seeded by
``[seed, 100 + stream, c]`` (geometry) and ``[seed, 100 + stream, c, 1]`` (noise), with streams ``STREAMS``; draws are
sequential and with replacement (nothing is excluded for having been drawn before), so the images of one split and
class are i.i.d. from P_c and the splits are independent samples. The training split has the long-tail counts
(``longtail_counts``: [500, 281, 158, 88, 50, 28, 15, 8, 5] by default; every statement is conditional on these
labels), the test split ``test_per_class`` images per class (default 500). A smaller training profile is a prefix
of a larger one, class by class, so studies against n are nested. A hold-out taken from the training split by a
seeded stratified permutation (``scilt_theory.data.holdout``, no groups needed) is again i.i.d. from P_c, class by
class, and independent of the part fitted on.

Two more splits ride along (``LongTailDataset.extra_splits``):

- ``validation``: ``VALIDATION_PER_CLASS`` i.i.d. draws per class from P_c (its own stream). Recipes and
  hyper-parameters are chosen on it, never on the test split.
- ``shift``: ``SHIFT_PER_CLASS`` draws per class from the same law with the origin uniform over the **shift
  region** instead (crops lie wholly in it, so no pixel is shared with the population region). Its error is an
  out-of-population error: it tells what a bound about P_c does *not* cover, and never stands beside one.

``provenance`` records every draw's (row, column, rotations, flip) in its source, the regions and the law.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.longtail import longtail_counts
from scilt_theory.data.scitiles import MIN_PATCH_STD, SCITILES_SOURCES, _resize, load_source, orient

NAME = "scitiles-pop"
SHIFT_FRACTION = 0.25          # share of each source's columns reserved for the shift split (its right edge)
DEFAULT_MAX_PER_CLASS = 500
DEFAULT_TEST_PER_CLASS = 500
VALIDATION_PER_CLASS = 100
SHIFT_PER_CLASS = 100
MAX_DRAWS_PER_CLASS = 200_000  # memory guard: 200k images of 98 px are ~23 GB
#: the law's defaults (DataConfig fields crop_size / photons / read_noise; chosen by benchmarks/calibrate_population.py)
DEFAULT_CROP_SIZE = 48
DEFAULT_PHOTONS = 20.0
DEFAULT_READ_NOISE = 0.05
#: generator stream of each split (seeded by [seed, 100 + stream, class] and [..., 1] for the noise)
STREAMS = {"train": 1, "test": 2, "validation": 3, "shift": 4}


@dataclass(frozen=True)
class CropLaw:
    """The parameters of P_c that do not depend on the class: crop side (source pixels), detector side, photons at
    full scale (Poisson gain) and read-noise standard deviation."""

    crop_size: int
    image_size: int
    photons: float
    read_noise: float

    def sentence(self) -> str:
        return (f"X ~ P_c: a {self.crop_size}-px square crop of scikit-image's '<source of class c>' with its origin "
                f"uniform over the population region (the source without its rightmost {SHIFT_FRACTION:.0%} of "
                f"columns), rotated by a uniform multiple of 90 degrees and flipped left-right with probability 1/2 "
                f"(nearly flat crops redrawn), resized to {self.image_size} px, then Poisson-Gaussian acquisition "
                f"noise Poisson({self.photons:g} v)/{self.photons:g} + N(0, {self.read_noise:g}^2), clipped to "
                f"[0, 1]; every split an independent i.i.d. sample, drawn with replacement")


def law_of(config: DataConfig) -> CropLaw:
    """The crop law of ``config`` (its fields, or the defaults above)."""
    return CropLaw(crop_size=config.crop_size or DEFAULT_CROP_SIZE, image_size=config.image_size,
                   photons=DEFAULT_PHOTONS if config.photons is None else float(config.photons),
                   read_noise=DEFAULT_READ_NOISE if config.read_noise is None else float(config.read_noise))


def regions(shape: tuple[int, int], crop: int) -> dict[str, tuple[int, int, int, int]]:
    """Origin ranges (y_lo, y_hi, x_lo, x_hi), inclusive, of a ``crop``-px square lying wholly inside the population
    region (columns [0, W − w_s)) and inside the shift region (columns [W − w_s, W)), w_s = ⌈SHIFT_FRACTION · W⌉."""
    height, width = shape
    shift_width = int(np.ceil(SHIFT_FRACTION * width))
    boundary = width - shift_width
    if crop > min(height, shift_width, boundary):
        raise ValueError(f"a {crop}-px crop does not fit both regions of a {height} x {width} source (shift region "
                         f"{shift_width} columns wide); choose crop_size <= {min(height, shift_width, boundary)}")
    return {"population": (0, height - crop, 0, boundary - crop),
            "shift": (0, height - crop, boundary, width - crop)}


def draw(image: np.ndarray, region: tuple[int, int, int, int], count: int, law: CropLaw,
         geometry: np.random.Generator, noise: np.random.Generator,
         out: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` i.i.d. draws of the law from ``region`` of ``image``: images float32 (count, 3, S, S) in [0, 1]
    (into ``out`` when given) and the geometry (count, 4) = (row, column, rotations, flip) of every draw."""
    y_lo, y_hi, x_lo, x_hi = region
    side = law.crop_size
    crops, params = [], np.empty((count, 4), dtype=np.int64)
    attempts = 0
    while len(crops) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"could not draw {count} textured {side}-px crops from region {region}")
        y = int(geometry.integers(y_lo, y_hi + 1))
        x = int(geometry.integers(x_lo, x_hi + 1))
        rotations, flip = int(geometry.integers(0, 4)), int(geometry.integers(0, 2))
        crop = image[y:y + side, x:x + side]
        if crop.std() < MIN_PATCH_STD:
            continue
        params[len(crops)] = (y, x, rotations, flip)
        crops.append(orient(crop, rotations, flip))
    images = _resize(crops, law.image_size, out)
    add_acquisition_noise(images, law, noise)
    return images, params


def add_acquisition_noise(images: torch.Tensor, law: CropLaw, rng: np.random.Generator, chunk: int = 512) -> None:
    """In place: z = Poisson(photons · v) / photons + N(0, read_noise²), clipped to [0, 1], one grey value per pixel
    (the 3 channels stay equal). The photon counts come from ``rng`` and the read noise from a generator spawned
    from it, each pixel after pixel in image order, so a prefix of the draws is unchanged when more are asked for."""
    read_rng = rng.spawn(1)[0]
    for start in range(0, images.shape[0], chunk):
        grey = images[start:start + chunk, 0].numpy().astype(np.float64)
        counts = rng.poisson(law.photons * grey)
        values = counts / law.photons + law.read_noise * read_rng.standard_normal(grey.shape)
        images[start:start + chunk] = torch.from_numpy(np.clip(values, 0.0, 1.0).astype(np.float32))[:, None]


def sample_split(config: DataConfig, split: str, per_class: list[int] | np.ndarray,
                 sources: Mapping[str, np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Draw ``per_class[c]`` images of class c from the stream of ``split`` (``STREAMS``): images, labels and the
    geometry of every draw (N, 4). ``split`` = "shift" draws from the shift region, every other split from the
    population region. Deterministic given ``config`` (its seed and law)."""
    if split not in STREAMS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(STREAMS)}")
    per_class = [int(n) for n in per_class]
    if max(per_class) > MAX_DRAWS_PER_CLASS or min(per_class) < 0:
        raise ValueError(f"{NAME} draws between 0 and {MAX_DRAWS_PER_CLASS} images per class, got {per_class}")
    law = law_of(config)
    size = law.image_size
    images = torch.empty(sum(per_class), 3, size, size)
    params, at = [], 0
    stream = 100 + STREAMS[split]
    for c, count in enumerate(per_class):
        name = SCITILES_SOURCES[c]
        image = sources[name] if sources is not None else load_source(name)
        region = regions(image.shape, law.crop_size)["shift" if split == "shift" else "population"]
        _, geometry = draw(image, region, count, law, np.random.default_rng([config.seed, stream, c]),
                           np.random.default_rng([config.seed, stream, c, 1]), out=images[at:at + count])
        params.append(geometry)
        at += count
    labels = torch.repeat_interleave(torch.arange(len(per_class)), torch.tensor(per_class, dtype=torch.int64))
    return images, labels, np.concatenate(params)


def build_scitiles_pop(config: DataConfig) -> LongTailDataset:
    """Build ``scitiles-pop`` (see the module docstring); deterministic given ``config``."""
    num_classes = config.num_classes or len(SCITILES_SOURCES)
    if num_classes > len(SCITILES_SOURCES):
        raise ValueError(f"{NAME} has {len(SCITILES_SOURCES)} classes, {num_classes} were asked for")
    n_max = config.max_per_class or DEFAULT_MAX_PER_CLASS
    n_test = config.test_per_class or DEFAULT_TEST_PER_CLASS
    counts = longtail_counts(n_max, num_classes, config.imbalance)
    law = law_of(config)
    sources = {name: load_source(name) for name in SCITILES_SOURCES[:num_classes]}
    for image in sources.values():
        regions(image.shape, law.crop_size)  # refuse a crop that does not fit before drawing anything
    train_x, train_y, train_geo = sample_split(config, "train", counts, sources)
    test_x, test_y, test_geo = sample_split(config, "test", [n_test] * num_classes, sources)
    extra, geometry = {}, {}
    for split, per in (("validation", VALIDATION_PER_CLASS), ("shift", SHIFT_PER_CLASS)):
        x, y, geo = sample_split(config, split, [per] * num_classes, sources)
        extra[split], geometry[f"{split}_crops"] = (x, y), geo
    provenance = {
        "law": law.sentence(), "crop_size": law.crop_size, "photons": law.photons, "read_noise": law.read_noise,
        "shift_fraction": SHIFT_FRACTION,
        "regions": {name: regions(sources[name].shape, law.crop_size) for name in sources},
        "train_crops": train_geo, "test_crops": test_geo, **geometry,
        "test_same_distribution": True,
        "test_distribution_note": "train, hold-out, validation and test are independent i.i.d. samples of the same "
                                  "stated law P_c, class by class (see provenance['law']); the shift split is not "
                                  "(it is drawn from a reserved region and never stands beside a bound)",
        "out_of_population_splits": ["shift"]}
    return LongTailDataset(NAME, tuple(SCITILES_SOURCES[:num_classes]), train_x, train_y, test_x, test_y, config,
                           provenance, extra_splits=extra)
