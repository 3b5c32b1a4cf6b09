"""Long-tail profiles, subsampling and Many/Medium/Few groups (LIFT/Decoupling convention)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scilt_theory.metrics import group_of


def longtail_counts(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
    """Exponential profile n_c = ⌊n_max · IF^(−c/(K−1))⌋, at least 1; class 0 is the head.

    >>> longtail_counts(100, 3, 100.0).tolist()
    [100, 10, 1]
    """
    if n_max < 1 or num_classes < 1:
        raise ValueError(f"n_max and num_classes must be positive, got {n_max} and {num_classes}")
    if not imbalance >= 1:
        raise ValueError(f"the imbalance factor must be at least 1, got {imbalance}")
    if num_classes == 1:
        return np.array([n_max], dtype=np.int64)
    exponents = np.arange(num_classes) / (num_classes - 1)
    # a tiny epsilon keeps exact powers (e.g. 100 · 100^-0.5 = 10) from flooring to 9 by rounding error
    counts = np.floor(n_max * imbalance ** (-exponents) + 1e-9).astype(np.int64)
    return np.maximum(counts, 1)


def class_groups(counts: Sequence[int], many_threshold: int = 100, few_threshold: int = 20) -> list[str]:
    """Many (n_c > many_threshold), Few (n_c < few_threshold), Medium otherwise, per class."""
    if few_threshold > many_threshold:
        raise ValueError(f"few_threshold ({few_threshold}) must not exceed many_threshold ({many_threshold})")
    return [group_of(int(n), many_threshold, few_threshold) for n in counts]


def subsample_per_class(labels: np.ndarray, counts: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Indices taking exactly counts[c] random samples of every class c (sorted, reproducible with rng)."""
    chosen = []
    for c, k in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if k > pool.size:
            raise ValueError(f"class {c} has {pool.size} samples, fewer than the {k} requested")
        chosen.append(rng.choice(pool, size=int(k), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
