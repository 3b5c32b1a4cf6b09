"""Binomial tail inversions (THEORY §8, proofs/holdout_certificates.md) against independent computations.

Oracles: bisection on scipy's binomial CDF (not the beta quantile the code uses), exact coverage by summing the
binomial / Poisson-binomial probability mass over every outcome, and the closed form of the zero-error floor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from scilt_theory.binomial import clopper_pearson_upper, information_floor, kl_bernoulli, kl_upper


def _bisect(f, lo: float, hi: float, iters: int = 200) -> float:
    """Root of a decreasing f on [lo, hi] by bisection (f(lo) >= 0 >= f(hi))."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) >= 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _cp_by_bisection(k: int, n: int, delta: float) -> float:
    if k == n:
        return 1.0
    return _bisect(lambda p: stats.binom.cdf(k, n, p) - delta, k / n, 1.0)


def _poisson_binomial_pmf(p: np.ndarray) -> np.ndarray:
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for pi in p:
        pmf[1:] = pmf[1:] * (1 - pi) + pmf[:-1] * pi
        pmf[0] *= 1 - pi
    return pmf


@given(st.integers(1, 400), st.data(), st.floats(1e-4, 0.5))
def test_clopper_pearson_equals_the_binomial_cdf_inversion(n, data, delta):
    k = data.draw(st.integers(0, n))
    assert clopper_pearson_upper(k, n, delta) == pytest.approx(_cp_by_bisection(k, n, delta), abs=1e-9)


@pytest.mark.parametrize("n,delta", [(1, 0.05), (10, 0.05), (37, 0.01), (150, 0.0028)])
def test_clopper_pearson_covers_at_level_delta_and_nearly_tightly(n, delta):
    """P(p > U(K)) <= δ for every p (exact sum over K), and close to δ for some p: halving or doubling δ in the
    code would fail the bisection test above or this one."""
    limits = np.array([clopper_pearson_upper(k, n, delta) for k in range(n + 1)])
    worst = 0.0
    for p in np.linspace(0.0, 1.0, 2001):
        fail = stats.binom.pmf(np.arange(n + 1), n, p)[p > limits].sum()
        assert fail <= delta + 1e-12
        worst = max(worst, fail)
    assert worst > 0.8 * delta


def test_information_floor_is_the_zero_error_limit():
    for n in (1, 5, 50, 500):
        assert information_floor(n, 0.05) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-12)
        assert information_floor(n, 0.05) == clopper_pearson_upper(0, n, 0.05)


@given(st.integers(1, 300), st.data(), st.floats(1e-4, 0.5))
def test_kl_upper_solves_the_chernoff_equation(n, data, delta):
    k = data.draw(st.integers(0, n - 1))
    u = kl_upper(k, n, delta)
    q = k / n
    expected = _bisect(lambda p: math.log(1 / delta) / n - kl_bernoulli(q, p), q, 1 - 1e-15)
    assert u == pytest.approx(expected, abs=1e-9)
    assert u >= clopper_pearson_upper(k, n, delta) - 1e-12  # Chernoff is never tighter than the exact inversion


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.floats(1e-3, 0.3))
def test_kl_upper_covers_the_mean_of_independent_different_bernoullis(p, delta):
    """Exact coverage for a Poisson-binomial count (a class-stratified sample): P(mean p > kl_upper(K)) <= δ."""
    p = np.array(p)
    n = len(p)
    pmf = _poisson_binomial_pmf(p)
    limits = np.array([kl_upper(k, n, delta) for k in range(n + 1)])
    assert pmf[p.mean() > limits + 1e-12].sum() <= delta + 1e-12


def test_clopper_pearson_can_undercover_a_poisson_binomial_mean():
    """Why the pooled (prior-weighted) certificate uses kl_upper: two draws with error rates 1 and 0.9495 (mean
    0.97475) are both errors w.p. 0.9495 only, and the exact inversion for one error, 0.97468, is below the mean."""
    p = np.array([1.0, 0.9495])
    pmf = _poisson_binomial_pmf(p)
    cp = np.array([clopper_pearson_upper(k, 2, 0.05) for k in range(3)])
    kl = np.array([kl_upper(k, 2, 0.05) for k in range(3)])
    assert pmf[p.mean() > cp].sum() > 0.05          # the exact binomial inversion fails here
    assert pmf[p.mean() > kl].sum() <= 0.05         # the Chernoff inversion does not


def test_bad_inputs_are_refused():
    for call in (lambda: clopper_pearson_upper(3, 2, 0.05), lambda: clopper_pearson_upper(0, 0, 0.05),
                 lambda: kl_upper(1, 5, 1.0), lambda: kl_upper(1.5, 5, 0.1), lambda: kl_bernoulli(2, 0.5)):
        with pytest.raises(ValueError):
            call()
