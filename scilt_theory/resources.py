"""Up-front estimates of what a bounds run costs, and the declared maxima of the options that scale it.

``--draws`` and ``--margin-grid-size`` scale memory and time without limit: every Monte Carlo draw keeps one value
per complexity (about 16 bytes while the mean is taken), and every margin-grid point adds the terms of every
statement's record for every target (about 12 kB per target). Before any work, :func:`check_bounds_resources`
refuses values above the declared maxima (:data:`MAX_DRAWS`, :data:`MAX_MARGIN_GRID`) or an estimate above the
memory this machine has available, in one sentence that says what would fit; :func:`estimate_bounds` gives the
estimate the command prints for long runs.

The constants were measured on 2 CPU cores (torch 2.x, float64 features): a run's fixed part is about 1.5 GB
(torch, the model, the features), a draw costs about 4.2e-9 s per unit of n·K·d, a grid point about 5.2e-5 s per
unit of n·K. They are estimates (to within a factor of a few), good for telling seconds from days.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

#: the most Monte Carlo sign draws a bounds run accepts: at 10^6 draws the McDiarmid term is already below 0.2 % of
#: the complexity's scale, so more draws change nothing a report shows but cost hours
MAX_DRAWS = 1_000_000
#: the most ρ values of the automatic margin grid: the grid is paid for by ln(m) in the confidence term, so beyond a
#: few hundred points it only adds cost
MAX_MARGIN_GRID = 4096
#: the smallest δ accepted: the statements divide δ among grid points, classes and statements and take its
#: logarithm, so a δ near the smallest float (5e-324) underflows to 0 on the way
MIN_DELTA = 1e-100

BASE_BYTES = 1.5e9
BYTES_PER_DRAW = 16.0
BYTES_PER_GRID_POINT_AND_TARGET = 12e3
SECONDS_PER_DRAW_UNIT = 4.2e-9  # per draw, per unit of n·K·d
SECONDS_PER_GRID_UNIT = 5.2e-5  # per grid point, per unit of n·K
EXTRA_TARGETS = 6  # overall, balanced, three groups, the worst class


@dataclass(frozen=True)
class Estimate:
    """What a bounds run is expected to need (rough: within a factor of a few)."""

    memory_bytes: float
    seconds: float
    n: int
    num_classes: int
    dim: int

    def describe(self) -> str:
        return f"about {format_bytes(self.memory_bytes)} of memory and {format_seconds(self.seconds)}"


def format_bytes(value: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value / 1e3:.3g} kB"


def format_seconds(value: float) -> str:
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} s"


def available_memory_bytes() -> int | None:
    """Memory this machine can give a new job now (``MemAvailable`` of /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return int(pages * size) if pages > 0 and size > 0 else None
    except (ValueError, OSError, AttributeError):
        return None


def estimate_bounds(*, n: int, num_classes: int, dim: int, draws: int, grid_size: int,
                    coupled_subsample: int = 0) -> Estimate:
    """Memory and time of a bounds run on a bound sample of ``n`` points, ``num_classes`` classes and features of
    dimension ``dim`` (see the module docstring for the constants)."""
    n, k, d = max(int(n), 1), max(int(num_classes), 1), max(int(dim), 1)
    targets = k + EXTRA_TARGETS
    memory = BASE_BYTES + BYTES_PER_DRAW * draws + BYTES_PER_GRID_POINT_AND_TARGET * grid_size * targets
    coupled = 2 * min(n, coupled_subsample)  # the coupled class and its random-feature baseline
    seconds = (SECONDS_PER_DRAW_UNIT * draws * (n + coupled) * k * d
               + SECONDS_PER_GRID_UNIT * grid_size * n * k)
    return Estimate(memory_bytes=memory, seconds=seconds, n=n, num_classes=k, dim=d)


def check_limits(*, draws: int, margin_grid_size: int, delta: float, margin_is_auto: bool = True) -> None:
    """The declared maxima (no data needed): one ValueError sentence for a value above them."""
    if draws > MAX_DRAWS:
        raise ValueError(f"draws must be at most {MAX_DRAWS:,} (more Monte Carlo draws change no reported digit; "
                         f"each complexity would hold about {format_bytes(BYTES_PER_DRAW * draws)} of draws), "
                         f"got {draws:,}")
    if margin_is_auto and margin_grid_size > MAX_MARGIN_GRID:
        raise ValueError(f"margin_grid_size must be at most {MAX_MARGIN_GRID} (the grid costs ln(m) in every bound "
                         f"and memory and time per point), got {margin_grid_size:,}")
    if 0 < delta < MIN_DELTA:
        raise ValueError(f"delta must be at least {MIN_DELTA:g} (it is divided among grid points, classes and "
                         f"statements and enters a logarithm; smaller values underflow to 0), got {delta!r}")


def check_bounds_resources(estimate: Estimate, *, available: int | None = None) -> None:
    """Refuse, in one ValueError sentence, a run whose estimated memory exceeds what the machine has available."""
    available = available_memory_bytes() if available is None else available
    if available is not None and estimate.memory_bytes > available:
        spare = available - BASE_BYTES
        fits = max(0, int(spare / BYTES_PER_DRAW)) if spare > 0 else 0
        raise ValueError(f"this bounds run needs {format_bytes(estimate.memory_bytes)} of memory (n = {estimate.n}, "
                         f"K = {estimate.num_classes}), more than the {format_bytes(available)} available; lower "
                         f"--draws (at most about {10 ** int(math.log10(fits)) if fits >= 10 else fits:,} fit) "
                         f"or --margin-grid-size")


def check_image_memory(*, name: str, num_images: int, image_size: int, available: int | None = None) -> None:
    """Refuse, in one ValueError sentence, a data set held in memory (float32, 3 channels) larger than the memory
    this machine has available (real data sets decode lazily and are not held)."""
    needed = BYTES_PER_IMAGE_FACTOR * num_images * 3 * image_size * image_size * 4
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > available:
        raise ValueError(f"{name} would hold {num_images:,} images of {image_size} px in memory, about "
                         f"{format_bytes(needed)}, more than the {format_bytes(available)} available; lower "
                         f"--max-per-class, --test-per-class or --img-size")


#: images are made, then stacked: about twice their size at the peak
BYTES_PER_IMAGE_FACTOR = 2
