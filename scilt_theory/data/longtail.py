"""Long-tail profiles, exact per-class subsampling and Many/Medium/Few groups (LIFT/Decoupling convention)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def longtail_counts(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
    """Training size of every class under the exponential long-tail profile; class 0 is the head.

    n_c = max(1, ⌊n_max · IF^(−c/(K−1))⌋),  c = 0, …, K−1,

    the CIFAR-LT profile of Cui et al. (2019) and Cao et al. (2019, LDAM). It is not a statement of docs/THEORY.md;
    THEORY only needs the resulting n_c. Counts never increase with c, n_0 = n_max and n_{K−1} = ⌊n_max / IF⌋
    (at least 1).

    Parameters
    ----------
    n_max : int
        Size of the head class (at least 1).
    num_classes : int
        K, the number of classes (at least 1).
    imbalance : float
        IF = n_max / n_min of the ideal profile (finite, at least 1).

    Returns
    -------
    np.ndarray
        int64 array of K counts.

    >>> longtail_counts(100, 3, 100.0).tolist()
    [100, 10, 1]
    """
    if int(n_max) != n_max or n_max < 1 or int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"n_max and num_classes must be positive whole numbers, got {n_max} and {num_classes}")
    if not (np.isfinite(imbalance) and imbalance >= 1):
        raise ValueError(f"the imbalance factor must be a finite number of at least 1, got {imbalance}")
    if num_classes == 1:
        return np.array([n_max], dtype=np.int64)
    exponents = np.arange(num_classes) / (num_classes - 1)
    # a tiny epsilon keeps exact powers (e.g. 100 · 100^-0.5 = 10) from flooring to 9 by rounding error
    counts = np.floor(n_max * float(imbalance) ** (-exponents) + 1e-9).astype(np.int64)
    return np.maximum(counts, 1)


def subsample_per_class(labels: np.ndarray, counts: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Indices into ``labels`` taking exactly ``counts[c]`` samples of every class c, without replacement.

    The draw depends only on ``rng``'s state; the returned indices are sorted (so the data keep their source order).
    """
    labels = np.asarray(labels)
    chosen = []
    for c, k in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if k > pool.size:
            raise ValueError(f"class {c} has {pool.size} samples, fewer than the {k} requested")
        chosen.append(rng.choice(pool, size=int(k), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def head_first_order(counts: Sequence[int]) -> np.ndarray:
    """Class permutation that puts the largest class first: new class i is old class ``order[i]``.

    Readers of real data sets use it to meet the class-order contract (class 0 is the head, counts never
    increase with the class index); ties keep their source order (stable sort), so the result is deterministic.
    Relabel with ``np.argsort(order)[old_labels]``.
    """
    return np.argsort(-np.asarray(counts, dtype=np.int64), kind="stable")
