"""The two-sided 95 % intervals every test value carries (THEORY §0, proofs/population_intervals.md): exact coverage
by enumeration of the binomial / Poisson-binomial laws, and power (a one-sided level spent on both ends, or the
exact binomial interval on a pooled count of unequal rates, under-covers)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from scilt_theory.binomial import (
    clopper_pearson_interval,
    kl_interval,
    kl_upper,
    max_rate_interval,
    mean_rate_interval,
)
from scilt_theory.metrics import evaluate_predictions


def _coverage(pmf: np.ndarray, interval, truth: float) -> float:
    """P(truth ∈ interval(k)) for a count k with law ``pmf`` on 0..n."""
    n = len(pmf) - 1
    ends = _ends(interval, n)
    return float(sum(p for k, p in enumerate(pmf) if ends[k][0] <= truth <= ends[k][1]))


_CACHE: dict = {}


def _ends(interval, n: int) -> list[tuple[float, float]]:
    key = (interval, n)
    if key not in _CACHE:
        _CACHE[key] = [interval(k, n) for k in range(n + 1)]
    return _CACHE[key]


def _cp90(k: int, n: int) -> tuple[float, float]:
    return clopper_pearson_interval(k, n, 0.90)


def _poisson_binomial(ps: list[float]) -> np.ndarray:
    pmf = np.array([1.0])
    for p in ps:
        pmf = np.convolve(pmf, [1 - p, p])
    return pmf


def test_clopper_pearson_interval_is_the_beta_quantile_pair():
    for k, n in [(0, 10), (3, 10), (10, 10), (17, 500)]:
        low, high = clopper_pearson_interval(k, n)
        assert low == pytest.approx(0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1), abs=1e-12)
        assert high == pytest.approx(1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k), abs=1e-12)


@pytest.mark.parametrize("n", [20, 60])
def test_clopper_pearson_covers_a_binomial_rate_and_is_not_loose(n):
    coverages = [_coverage(stats.binom.pmf(np.arange(n + 1), n, p), clopper_pearson_interval, p)
                 for p in np.linspace(0.01, 0.99, 99)]
    assert min(coverages) >= 0.95 - 1e-12
    # some rate is covered with < 96.5 %: spending α (not α/2) on each end would drop below 95 % there
    assert min(coverages) < 0.965
    one_sided_each = [_coverage(stats.binom.pmf(np.arange(n + 1), n, p), _cp90, p)
                      for p in np.linspace(0.01, 0.99, 99)]
    assert min(one_sided_each) < 0.95


def test_the_kl_interval_covers_the_mean_of_unequal_rates_where_the_pooled_clopper_pearson_does_not():
    rates = [1.0, 0.9495]  # proofs/holdout_certificates.md: the exact binomial inversion under-covers this mean
    pmf = _poisson_binomial(rates)
    mean = float(np.mean(rates))
    assert _coverage(pmf, _cp90, mean) < 0.95
    rng = np.random.default_rng(0)
    for _ in range(12):
        ps = list(rng.uniform(0, 1, size=int(rng.integers(2, 16))) ** rng.uniform(0.2, 4))
        assert _coverage(_poisson_binomial(ps), kl_interval, float(np.mean(ps))) >= 0.95 - 1e-12


def test_the_kl_interval_spends_half_the_level_on_each_end():
    low, high = kl_interval(7, 40)
    assert high == pytest.approx(kl_upper(7, 40, 0.025), abs=1e-12)
    assert low == pytest.approx(1 - kl_upper(33, 40, 0.025), abs=1e-12)
    assert kl_interval(7, 40)[1] > kl_interval(7, 40, 0.90)[1]


def test_pooled_mean_uses_the_kl_interval_and_weighted_mean_the_simultaneous_class_intervals():
    assert mean_rate_interval([1, 2, 3], [100] * 3, [1 / 3] * 3) == kl_interval(6, 300)
    low, high = mean_rate_interval([1, 2, 3], [100] * 3, [0.5, 0.3, 0.2])
    parts = [clopper_pearson_interval(k, 100, 1 - 0.05 / 3) for k in (1, 2, 3)]
    assert low == pytest.approx(sum(w * lo for w, (lo, _) in zip([0.5, 0.3, 0.2], parts)))
    assert high == pytest.approx(sum(w * hi for w, (_, hi) in zip([0.5, 0.3, 0.2], parts)))


@pytest.mark.parametrize("rates", [(0.1, 0.3), (0.2, 0.2, 0.05), (0.5, 0.05)])
def test_simultaneous_intervals_cover_the_worst_class_and_weighted_means_exactly(rates):
    n = 12 if len(rates) == 2 else 6
    pmfs = [stats.binom.pmf(np.arange(n + 1), n, p) for p in rates]
    weights = np.linspace(1, 2, len(rates))
    weights = list(weights / weights.sum())
    worst, weighted = 0.0, 0.0
    for ks in itertools.product(range(n + 1), repeat=len(rates)):
        prob = float(np.prod([pmf[k] for pmf, k in zip(pmfs, ks)]))
        lo, hi = max_rate_interval(list(ks), [n] * len(rates))
        worst += prob * (lo <= max(rates) <= hi)
        lo, hi = mean_rate_interval(list(ks), [n] * len(rates), weights)
        weighted += prob * (lo <= float(np.dot(weights, rates)) <= hi)
    assert worst >= 0.95 and weighted >= 0.95


def test_every_metric_carries_its_interval():
    y_true = np.repeat(np.arange(3), 50)
    y_pred = y_true.copy()
    y_pred[:5] = 1  # class 0: 5 errors of 50
    y_pred[100:120] = 0  # class 2: 20 errors of 50
    m = evaluate_predictions(y_true, y_pred, num_classes=3, train_counts=[300, 50, 5])
    ci = m["intervals"]
    assert ci["per_class_accuracy"][0] == pytest.approx([1 - x for x in clopper_pearson_interval(5, 50)][::-1])
    assert ci["balanced_accuracy"] == pytest.approx([1 - x for x in kl_interval(25, 150)][::-1])
    assert ci["group_accuracy"]["few"] == ci["per_class_accuracy"][2]
    assert ci["worst_class"] == pytest.approx([1 - x for x in max_rate_interval([5, 0, 20], [50] * 3)][::-1])
    for key in ("balanced_accuracy", "worst_class"):
        low, high = ci[key]
        value = m[key] if key == "balanced_accuracy" else m["worst_class"]["accuracy"]
        assert low <= value <= high
