"""Binomial tail inversions: the test-set / hold-out certificates of docs/THEORY.md §8 (Langford 2005).

For a classifier fixed before a sample of n independent draws with k errors:

* :func:`clopper_pearson_upper` — the exact binomial tail inversion = the one-sided Clopper–Pearson limit
  ``Beta⁻¹(1 − δ; k + 1, n − k)`` (1 for k = n): the largest p with ``P_{Bin(n,p)}(X ≤ k) ≥ δ``. Valid when the n
  draws are i.i.d. (one class's sample: a Binomial(n, err_c) count).
* :func:`kl_upper` — the Chernoff (relative-entropy) inversion ``sup{p ≥ k/n : n·kl(k/n ‖ p) ≤ ln(1/δ)}``, through
  :func:`kl_inverse_upper` (the one kl inversion, also the PAC-Bayes-kl bound's). Valid for independent draws
  with *different* error rates (a class-stratified sample: a Poisson-binomial count), for the mean error rate, where
  the exact binomial inversion can fail (proofs/holdout_certificates.md).
* :func:`information_floor` — what a classifier with zero errors could certify from n draws: ``1 − δ^{1/n}``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from scilt_theory.constraints import check_count, check_delta

__all__ = ["clopper_pearson_interval", "clopper_pearson_upper", "information_floor", "kl_bernoulli", "kl_interval",
           "kl_inverse_upper", "kl_upper", "max_rate_interval", "mean_rate_interval"]


def _check(errors: int, n: int, delta: float) -> tuple[int, int, float]:
    """(errors, n, delta) of a certificate: 0 <= errors <= n, n >= 1, delta in (0, 1)."""
    n, errors = check_count(n, "n"), check_count(errors, "errors", 0)
    if errors > n:
        raise ValueError(f"need 0 <= errors <= n, got errors={errors}, n={n}.")
    return errors, n, check_delta(delta)


def clopper_pearson_upper(errors: int, n: int, delta: float) -> float:
    """One-sided Clopper–Pearson upper limit at confidence 1 − δ (THEORY §8, the test-set bound).

    ``Beta⁻¹(1 − δ; k + 1, n − k)`` from ``scipy.stats.beta.ppf``; it is the p at which
    ``P_{Bin(n,p)}(X <= k) = δ``, so P(err > limit) <= δ for a Binomial(n, err) count k.
    """
    k, n, delta = _check(errors, n, delta)
    if k == n:
        return 1.0
    return float(stats.beta.ppf(1.0 - delta, k + 1, n - k))


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """kl(q ‖ p) elementwise, unchecked: q ln(q/p) + (1 − q) ln((1 − q)/(1 − p)) with 0 ln 0 = 0."""
    return special.xlogy(q, q / p) + special.xlogy(1.0 - q, (1.0 - q) / (1.0 - p))


def kl_bernoulli(q: float, p: float) -> float:
    """kl(q ‖ p) = q ln(q/p) + (1 − q) ln((1 − q)/(1 − p)) for Bernoulli means, with 0 ln 0 = 0 (+inf where p sits
    on a boundary that q does not)."""
    if not (0.0 <= q <= 1.0 and 0.0 <= p <= 1.0):
        raise ValueError(f"kl needs means in [0, 1], got q={q}, p={p}.")
    if q == p:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(_kl(np.float64(q), np.float64(p)))


def kl_inverse_upper(q: float | np.ndarray, budget: float | np.ndarray, iterations: int = 64) -> np.ndarray:
    """The kl inverse ``sup{p ∈ [q, 1] : kl(q ‖ p) ≤ budget}``, elementwise, rounded up: bisection keeps
    kl(q ‖ lo) ≤ budget and returns the upper end, so the value is never below the exact inverse. Nondecreasing in q
    and in the budget. The one kl inversion of the toolkit (:func:`kl_upper`; the PAC-Bayes-kl bound)."""
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    budget = np.asarray(budget, dtype=np.float64)
    q, budget = np.broadcast_arrays(q, budget)
    lo, hi = q.copy(), np.ones_like(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            ok = _kl(q, mid) <= budget
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.where(budget <= 0, q, hi)


def kl_upper(errors: int, n: int, delta: float) -> float:
    """``sup{p >= k/n : n·kl(k/n ‖ p) <= ln(1/δ)}`` (THEORY §8; Chernoff's bound inverted).

    For independent Bernoulli draws with means p_1..p_n and p̄ their mean, P(k/n ≤ q) ≤ exp(−n kl(q ‖ p̄)) for
    q ≤ p̄, so P(p̄ > kl_upper) ≤ δ (proofs/holdout_certificates.md). Solved by :func:`kl_inverse_upper`.
    """
    k, n, delta = _check(errors, n, delta)
    if k == n:
        return 1.0
    return float(kl_inverse_upper(k / n, math.log(1.0 / delta) / n))


def information_floor(n: int, delta: float) -> float:
    """The smallest certificate n draws can give: the Clopper–Pearson limit for zero errors, ``1 − δ^{1/n}``."""
    return clopper_pearson_upper(0, n, delta)


def clopper_pearson_interval(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval of a binomial rate at ``confidence``, from
    ``scipy.stats.binomtest(...).proportion_ci(method="exact")`` (THEORY §0, population estimates)."""
    k, n, _ = _check(errors, n, 1.0 - confidence)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def kl_interval(errors: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Chernoff (kl) interval of the mean rate p̄ of n independent, not necessarily identical Bernoulli
    draws with ``errors`` successes: [1 − kl_upper(n − k, n, α/2), kl_upper(k, n, α/2)], α = 1 − confidence. Each
    end fails with probability ≤ α/2 (Chernoff's bound holds for the mean of independent Bernoullis)."""
    k, n, _ = _check(errors, n, 1.0 - confidence)
    half = (1.0 - confidence) / 2
    return 1.0 - kl_upper(n - k, n, half), kl_upper(k, n, half)


def mean_rate_interval(errors: list[int], counts: list[int], weights: list[float],
                       confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided interval of Σ_c w_c p_c (Σ w_c = 1) from independent per-class counts errors[c] ~ Bin(counts[c], p_c)
    (THEORY §0; proofs/population_intervals.md).

    - weights proportional to the counts (a pooled rate, e.g. the balanced error on a balanced test split): the
      Chernoff (kl) interval of the pooled count Σ errors[c] out of Σ counts[c] (:func:`kl_interval`). The pooled
      count is Poisson-binomial, for which the exact binomial (Clopper–Pearson) interval can under-cover
      (proofs/holdout_certificates.md); the kl interval cannot.
    - other weights (e.g. the training prior): simultaneous per-class Clopper–Pearson intervals at
      1 − (1 − confidence)/K, combined with the weights (a union bound; conservative).
    """
    if not (len(errors) == len(counts) == len(weights)) or not errors:
        raise ValueError("errors, counts and weights need one entry per class")
    total_n = sum(counts)
    if len(errors) == 1:  # one class: i.i.d. draws, the exact interval
        return clopper_pearson_interval(errors[0], counts[0], confidence)
    if all(math.isclose(w, n / total_n, rel_tol=1e-9, abs_tol=1e-12) for w, n in zip(weights, counts)):
        return kl_interval(sum(errors), total_n, confidence)
    each = 1.0 - (1.0 - confidence) / len(errors)
    parts = [clopper_pearson_interval(k, n, each) for k, n in zip(errors, counts)]
    return (float(sum(w * lo for w, (lo, _) in zip(weights, parts))),
            float(min(1.0, sum(w * hi for w, (_, hi) in zip(weights, parts)))))


def max_rate_interval(errors: list[int], counts: list[int], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided interval of max_c p_c (the worst-class error) from simultaneous per-class Clopper–Pearson intervals
    at 1 − (1 − confidence)/K: [max_c low_c, max_c high_c] (proofs/population_intervals.md)."""
    each = 1.0 - (1.0 - confidence) / len(errors)
    parts = [clopper_pearson_interval(k, n, each) for k, n in zip(errors, counts)]
    return max(lo for lo, _ in parts), max(hi for _, hi in parts)
