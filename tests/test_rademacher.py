"""Estimators of scilt_theory.rademacher against exact oracles (THEORY §1, §3a, §5, §7).

Oracles used here: naive ``itertools.product`` enumeration over all sign vectors (no symmetry, numpy),
closed-form identities (n = 1, orthogonal rows of equal norm, d = 1 with a brute-force integer loop,
Khintchine-Kahane equality case), and cvxpy as an independent per-draw solver.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scilt_theory.erc import ErcSummary
from scilt_theory.rademacher import (
    closed_form_bounds,
    linear_sup_closed,
    linear_sup_cvxpy,
    massart_bound,
    mc_certificate,
    mc_deviation,
    rademacher_ball_intersection,
    rademacher_finite,
    rademacher_finite_vector,
    rademacher_linear,
    rademacher_signs,
)

NORMS = ["frobenius", "row"]


def naive_linear(psi: np.ndarray, radius: float, k: int, norm: str) -> float:
    """E sup over all Sigma in {+-1}^{n x K} (no symmetry), sup in closed form per draw (THEORY §1)."""
    n = psi.shape[0]
    vals = []
    for s in itertools.product((-1.0, 1.0), repeat=n * k):
        sig = np.array(s).reshape(n, k)
        prod = psi.T @ sig
        vals.append(np.linalg.norm(prod) if norm == "frobenius" else np.linalg.norm(prod, axis=0).sum())
    return radius / n * float(np.mean(vals))


def naive_finite(values: np.ndarray) -> float:
    """E max_j (1/n) sum_i sigma_i a_ji over all 2^n sign vectors (values: |A| x n)."""
    n = values.shape[1]
    return float(np.mean([np.max(values @ np.array(s)) for s in itertools.product((-1.0, 1.0), repeat=n)])) / n


def _psi(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ---------------------------------------------------------------------------------------------------------
# exact enumeration vs independent oracles (THEORY §5, §7)
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), d=st.integers(1, 4), k=st.integers(1, 3),
       norm=st.sampled_from(NORMS), radius=st.floats(0.1, 5.0))
def test_exact_matches_naive_itertools_enumeration(seed, n, d, k, norm, radius):
    n = min(n, 10 // k)  # the naive oracle visits all 2^{nK} sign matrices
    psi = _psi(seed, n, d)
    got = rademacher_linear(psi, radius, num_outputs=k, norm=norm, method="exact")
    want = naive_linear(psi, radius, k, norm)
    assert got.value == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert got.upper == got.value == got.lower and got.stderr == 0.0 and got.n_draws is None


@pytest.mark.parametrize("n,d", [(13, 3), (14, 2)])
def test_exact_meet_in_the_middle_chunked_matches_naive(n, d):
    psi = _psi(n, n, d)
    want = naive_linear(psi, 1.0, 1, "row")
    for budget in (2**12, 2**30):  # tiny budget: many chunks of head patterns
        got = rademacher_linear(psi, 1.0, norm="row", method="exact", memory_budget_bytes=budget)
        assert got.value == pytest.approx(want, rel=1e-12)


def test_exact_frobenius_column_combinations_chunked_matches_naive():
    psi = _psi(3, 4, 3)
    want = naive_linear(psi, 0.7, 3, "frobenius")
    for budget in (2**8, 2**30):
        got = rademacher_linear(psi, 0.7, num_outputs=3, norm="frobenius", method="exact",
                                memory_budget_bytes=budget)
        assert got.value == pytest.approx(want, rel=1e-12)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 5), k=st.integers(1, 4), radius=st.floats(0.0, 3.0))
def test_exact_single_sample_identity(seed, d, k, radius):
    # n = 1: ||psi_1 Sigma_1^T||_F = sqrt(K) ||psi_1|| for every draw; row: K ||psi_1||.
    psi = _psi(seed, 1, d)
    norm1 = float(np.linalg.norm(psi))
    frob = rademacher_linear(psi, radius, num_outputs=k, norm="frobenius", method="exact").value
    row = rademacher_linear(psi, radius, num_outputs=k, norm="row", method="exact").value
    assert frob == pytest.approx(radius * math.sqrt(k) * norm1, rel=1e-12, abs=1e-15)
    assert row == pytest.approx(radius * k * norm1, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("n,k,norm", [(1, 1, "row"), (5, 1, "row"), (8, 1, "frobenius"), (4, 3, "frobenius"),
                                      (6, 2, "row"), (12, 1, "row")])
def test_exact_orthogonal_equal_norm_identity(n, k, norm):
    # psi_i = c e_i: ||Psi^T sigma|| = c sqrt(n) for every sigma, so Jensen is tight.
    c, radius = 1.7, 0.9
    psi = c * np.eye(n, n + 2)
    rng = np.random.default_rng(n)
    q, _ = np.linalg.qr(rng.normal(size=(n + 2, n + 2)))
    psi = psi @ q  # rotate: still orthogonal rows of norm c
    got = rademacher_linear(psi, radius, num_outputs=k, norm=norm, method="exact").value
    want = radius * c * math.sqrt(k * n) / n if norm == "frobenius" else radius * k * c * math.sqrt(n) / n
    assert got == pytest.approx(want, rel=1e-12)
    assert closed_form_bounds(psi, radius, k, norm)[1] == pytest.approx(want, rel=1e-12)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_exact_d1_bruteforce_integer_loop(seed, n):
    x = np.random.default_rng(seed).normal(size=n)
    total = 0.0
    for t in range(2**n):  # E |sum_i sigma_i x_i| by an explicit loop over bit patterns
        s = sum(x[i] if (t >> i) & 1 else -x[i] for i in range(n))
        total += abs(s)
    want = total / 2**n / n
    got = rademacher_linear(x[:, None], 1.0, method="exact").value
    assert got == pytest.approx(want, rel=1e-11)


def test_exact_refuses_too_many_signs():
    psi = _psi(0, 25, 2)
    with pytest.raises(ValueError, match="method=\"mc\""):
        rademacher_linear(psi, 1.0, method="exact")
    with pytest.raises(ValueError, match="max_exact_signs"):
        rademacher_linear(_psi(0, 5, 2), 1.0, num_outputs=3, method="exact", max_exact_signs=14)
    # row class needs only n signs, so the same shape is allowed there
    rademacher_linear(_psi(0, 5, 2), 1.0, num_outputs=3, norm="row", method="exact", max_exact_signs=14)


def test_auto_picks_exact_then_mc():
    assert rademacher_linear(_psi(0, 6, 2), 1.0, method="auto").method == "exact"
    assert rademacher_linear(_psi(0, 30, 2), 1.0, method="auto", n_draws=10).method == "mc"


# ---------------------------------------------------------------------------------------------------------
# Monte Carlo and its certificate (THEORY §5)
# ---------------------------------------------------------------------------------------------------------

MC_CASES = [(5, 3, 1, "frobenius"), (7, 4, 2, "frobenius"), (6, 3, 3, "row"), (10, 2, 1, "row"), (4, 5, 4, "row")]


@pytest.mark.parametrize("n,d,k,norm", MC_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_mc_within_4_stderr_of_exact(n, d, k, norm, seed):
    psi = _psi(100 + n, n, d)
    exact = rademacher_linear(psi, 1.3, num_outputs=k, norm=norm, method="exact").value
    mc = rademacher_linear(psi, 1.3, num_outputs=k, norm=norm, method="mc", n_draws=3000, seed=seed)
    assert mc.stderr > 0
    assert abs(mc.value - exact) <= 4 * mc.stderr
    assert mc.n_draws == 3000 and mc.delta_mc == 0.01 and mc.method == "mc"


@pytest.mark.parametrize("n,d,k,norm", MC_CASES)
def test_mc_certificate_covers_exact(n, d, k, norm):
    psi = _psi(200 + n, n, d)
    exact = rademacher_linear(psi, 2.0, num_outputs=k, norm=norm, method="exact").value
    lower, closed_up = closed_form_bounds(psi, 2.0, k, norm)
    for seed in range(5):
        mc = rademacher_linear(psi, 2.0, num_outputs=k, norm=norm, n_draws=200, seed=seed, delta_mc=0.05)
        cert = mc_certificate(mc.value, psi, 2.0, num_outputs=k, norm=norm, n_draws=200, delta_mc=0.05)
        assert mc.upper == pytest.approx(min(cert, closed_up), rel=1e-12)
        assert mc.upper >= exact
        assert mc.lower == pytest.approx(lower)


def test_mc_certificate_formula():
    psi = _psi(7, 9, 4)
    s2 = float((psi**2).sum())
    b, k, m, delta = 1.5, 3, 400, 0.02
    frob = mc_deviation(psi, b, num_outputs=k, norm="frobenius", n_draws=m, delta_mc=delta)
    row = mc_deviation(psi, b, num_outputs=k, norm="row", n_draws=m, delta_mc=delta)
    assert frob == pytest.approx(b / 9 * math.sqrt(2 * k * s2 * math.log(1 / delta) / m), rel=1e-12)
    assert row == pytest.approx(b * k / 9 * math.sqrt(2 * s2 * math.log(1 / delta) / m), rel=1e-12)
    assert mc_certificate(0.25, psi, b, num_outputs=k, norm="row", n_draws=m, delta_mc=delta) == \
        pytest.approx(0.25 + row)


def test_mc_certificate_coverage_rate_scalar_class():
    # With delta_mc = 0.2 the certificate may fail in at most ~20% of seeds; McDiarmid is conservative, so
    # failing in more than half of 40 seeds would mean a wrong deviation term.
    psi = _psi(11, 8, 3)
    exact = rademacher_linear(psi, 1.0, method="exact").value
    misses = 0
    for seed in range(40):
        mc = rademacher_linear(psi, 1.0, method="mc", n_draws=50, seed=seed, delta_mc=0.2)
        cert = mc.value + mc_deviation(psi, 1.0, n_draws=50, delta_mc=0.2)
        misses += cert < exact
    assert misses <= 8


def test_mc_same_seed_same_value_any_chunking():
    psi = _psi(5, 30, 4)
    ref = rademacher_linear(psi, 1.0, num_outputs=3, n_draws=257, seed=9)
    for budget in (1, 4096, 50_000):
        other = rademacher_linear(psi, 1.0, num_outputs=3, n_draws=257, seed=9, memory_budget_bytes=budget)
        assert other.value == ref.value and other.stderr == ref.stderr
    assert rademacher_linear(psi, 1.0, num_outputs=3, n_draws=257, seed=10).value != ref.value


def test_mc_per_draw_values_match_closed_form_on_the_same_signs():
    psi = _psi(6, 11, 5)
    signs = torch.cat(list(rademacher_signs(11, 40, num_columns=3, seed=4, dtype=torch.float64)))
    sig = signs.numpy().transpose(0, 2, 1)
    want = linear_sup_closed(psi, sig, 1.0, norm="frobenius").mean()
    got = rademacher_linear(psi, 1.0, num_outputs=3, n_draws=40, seed=4).value
    assert got == pytest.approx(want, rel=1e-12)


def test_signs_are_pm1_balanced_and_chunk_invariant():
    a = torch.cat(list(rademacher_signs(70, 300, num_columns=2, seed=1)))
    b = torch.cat(list(rademacher_signs(70, 300, num_columns=2, seed=1, chunk_draws=7)))
    assert a.shape == (300, 2, 70) and torch.equal(a, b)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(a.mean())) < 0.02          # 42000 signs: 4.1 standard deviations of the mean
    assert abs(float((a[:, 0] * a[:, 1]).mean())) < 0.02   # columns uncorrelated


def test_mc_float32_and_float64_agree():
    psi = _psi(8, 40, 6)
    r64 = rademacher_linear(psi, 1.0, n_draws=300, seed=2)
    r32 = rademacher_linear(psi.astype(np.float32), 1.0, n_draws=300, seed=2)
    rt = rademacher_linear(torch.from_numpy(psi), 1.0, n_draws=300, seed=2)
    assert r32.value == pytest.approx(r64.value, rel=1e-5)
    assert rt.value == r64.value


# ---------------------------------------------------------------------------------------------------------
# Lemma 5.2(a) envelope and structural properties (THEORY §3a, §7)
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 9), d=st.integers(1, 4), k=st.integers(1, 3),
       norm=st.sampled_from(NORMS), radius=st.floats(0.01, 10.0))
def test_lemma52a_envelope_contains_exact(seed, n, d, k, norm, radius):
    if norm == "frobenius" and n * k > 12:
        n = 12 // k
    psi = _psi(seed, n, d)
    lower, upper = closed_form_bounds(psi, radius, k, norm)
    exact = rademacher_linear(psi, radius, num_outputs=k, norm=norm, method="exact").value
    assert lower <= exact * (1 + 1e-12) and exact <= upper * (1 + 1e-12)
    closed = rademacher_linear(psi, radius, num_outputs=k, norm=norm, method="closed")
    assert (closed.value, closed.upper, closed.lower, closed.stderr) == (upper, upper, lower, 0.0)
    s2 = float((psi**2).sum())
    want_up = radius / n * math.sqrt(k * s2) if norm == "frobenius" else radius * k / n * math.sqrt(s2)
    assert upper == pytest.approx(want_up, rel=1e-12) and lower == pytest.approx(want_up / math.sqrt(2))


def test_lemma52a_khintchine_constant_is_attained():
    # d = 1, psi = (1, 1): E|s1 + s2| = 1 = sqrt(E(s1 + s2)^2 / 2): the lower value 1/sqrt(2) is tight.
    lower, upper = closed_form_bounds(np.ones((2, 1)), 1.0)
    exact = rademacher_linear(np.ones((2, 1)), 1.0, method="exact").value
    assert exact == pytest.approx(0.5) and lower == pytest.approx(exact, rel=1e-12)
    assert upper == pytest.approx(math.sqrt(2) / 2)


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), c=st.floats(0.0, 20.0), norm=st.sampled_from(NORMS))
def test_linearity_in_radius(seed, c, norm):
    psi = _psi(seed, 6, 3)
    for method in ("exact", "closed", "mc"):
        r1 = rademacher_linear(psi, 1.0, num_outputs=2, norm=norm, method=method, n_draws=50, seed=seed)
        rc = rademacher_linear(psi, c, num_outputs=2, norm=norm, method=method, n_draws=50, seed=seed)
        assert rc.value == pytest.approx(c * r1.value, rel=1e-12, abs=1e-15)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 9), k=st.integers(1, 2), norm=st.sampled_from(NORMS))
def test_invariance_permutation_and_sign_flip(seed, n, k, norm):
    rng = np.random.default_rng(seed)
    psi = rng.normal(size=(n, 3))
    ref = rademacher_linear(psi, 1.0, num_outputs=k, norm=norm, method="exact").value
    perm = rng.permutation(n)
    flips = rng.choice([-1.0, 1.0], size=(n, 1))
    for other in (psi[perm], flips * psi, (flips * psi)[perm]):
        assert rademacher_linear(other, 1.0, num_outputs=k, norm=norm, method="exact").value == \
            pytest.approx(ref, rel=1e-12)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 8), t=st.floats(1.0, 4.0), i=st.integers(0, 7))
def test_monotone_in_sample_norm_and_ball(seed, n, t, i):
    psi = _psi(seed, n, 3)
    ref = rademacher_linear(psi, 1.0, method="exact").value
    bigger = psi.copy()
    bigger[i % n] *= t          # E||v + t s psi_i|| is convex and even in t, so non-decreasing for t >= 0
    assert rademacher_linear(bigger, 1.0, method="exact").value >= ref * (1 - 1e-12)
    assert rademacher_linear(psi, 1.0 + t, method="exact").value >= ref


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), k=st.integers(1, 3))
def test_frobenius_vs_row_relations(seed, n, k):
    # W_F(B) <= W_row(B) <= W_F(B sqrt K), and K = 1 is the same scalar ball for both.
    psi = _psi(seed, n, 3)
    frob = rademacher_linear(psi, 1.0, num_outputs=k, norm="frobenius", method="exact").value
    row = rademacher_linear(psi, 1.0, num_outputs=k, norm="row", method="exact").value
    assert frob <= row * (1 + 1e-12) and row <= math.sqrt(k) * frob * (1 + 1e-12)
    one_f = rademacher_linear(psi, 1.0, norm="frobenius", method="exact").value
    one_r = rademacher_linear(psi, 1.0, norm="row", method="exact").value
    assert one_f == pytest.approx(one_r, rel=1e-13)
    mc_f = rademacher_linear(psi, 1.0, norm="frobenius", n_draws=30, seed=seed)
    mc_r = rademacher_linear(psi, 1.0, norm="row", n_draws=30, seed=seed)
    assert mc_f.value == mc_r.value and mc_f.upper == mc_r.upper


@pytest.mark.parametrize("method", ["exact", "mc", "closed", "cvxpy"])
def test_zero_class(method):
    psi = _psi(0, 5, 3)
    assert rademacher_linear(psi, 0.0, num_outputs=2, method=method, n_draws=3).value == pytest.approx(0, abs=1e-12)
    zero = rademacher_linear(np.zeros((5, 3)), 2.0, num_outputs=2, method=method, n_draws=3)
    assert zero.value == pytest.approx(0, abs=1e-12) and zero.upper == pytest.approx(0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# finite classes: exact enumeration and Massart (THEORY §7)
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 8))
def test_exact_finite_matches_naive(seed, size, n):
    values = np.random.default_rng(seed).normal(size=(size, n))
    got = rademacher_finite(values)
    assert got.value == pytest.approx(naive_finite(values), rel=1e-12, abs=1e-14)
    assert got.method == "exact" and got.upper == got.value


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 4), n=st.integers(1, 4), k=st.integers(1, 3))
def test_exact_finite_vector_matches_naive(seed, size, n, k):
    values = np.random.default_rng(seed).normal(size=(size, n, k))
    vals = [max(float((a * np.array(s).reshape(n, k)).sum()) for a in values)
            for s in itertools.product((-1.0, 1.0), repeat=n * k)]
    got = rademacher_finite_vector(values)
    assert got.value == pytest.approx(float(np.mean(vals)) / n, rel=1e-12, abs=1e-14)
    # K = 1 vector class is the scalar class
    assert rademacher_finite_vector(values[:, :, :1]).value == pytest.approx(rademacher_finite(values[:, :, 0]).value)


def test_exact_finite_is_not_symmetrised():
    # A = {a}: max over one member is linear in sigma, so R = 0 exactly; a symmetric half enumeration
    # would give E|<sigma, a>|/n > 0.
    assert rademacher_finite(np.array([[1.0, 2.0, -0.5]])).value == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=30)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 12), n=st.integers(1, 10), spread=st.floats(0.1, 10.0))
def test_massart_finite_classes(seed, size, n, spread):
    values = spread * np.random.default_rng(seed).normal(size=(size, n))
    exact = rademacher_finite(values).value
    massart = np.linalg.norm(values, axis=1).max() * math.sqrt(2 * math.log(size)) / n
    assert exact <= massart + 1e-12
    assert massart_bound(values) == pytest.approx(massart, rel=1e-12)


def test_massart_nearly_tight_for_antipodal_pair():
    # A = {a, -a} with n = 1, a = (1,): R = E|sigma| = 1 and Massart gives sqrt(2 ln 2) = 1.177.
    values = np.array([[1.0], [-1.0]])
    exact = rademacher_finite(values).value
    assert exact == pytest.approx(1.0)
    assert massart_bound(values) == pytest.approx(math.sqrt(2 * math.log(2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finite_mc_within_4_stderr_and_certificate(seed):
    values = np.random.default_rng(seed).normal(size=(7, 9))
    exact = rademacher_finite(values).value
    mc = rademacher_finite(values, method="mc", n_draws=3000, seed=seed)
    assert abs(mc.value - exact) <= 4 * mc.stderr and mc.upper >= exact
    vec = np.random.default_rng(seed).normal(size=(5, 4, 3))
    exact_v = rademacher_finite_vector(vec).value
    mc_v = rademacher_finite_vector(vec, method="mc", n_draws=3000, seed=seed)
    assert abs(mc_v.value - exact_v) <= 4 * mc_v.stderr and mc_v.upper >= exact_v


# ---------------------------------------------------------------------------------------------------------
# cvxpy per draw and intersected classes (THEORY §5)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("k", [1, 3])
def test_cvxpy_per_draw_matches_closed_form(norm, k):
    rng = np.random.default_rng(k)
    psi = rng.normal(size=(9, 4))
    signs = rng.choice([-1.0, 1.0], size=(6, 9, k))
    closed = linear_sup_closed(psi, signs, 1.7, norm=norm)
    solved = linear_sup_cvxpy(psi, signs, 1.7, norm=norm)
    np.testing.assert_allclose(solved, closed, rtol=1e-6)


@pytest.mark.parametrize("norm", NORMS)
def test_cvxpy_method_matches_mc_on_same_draws(norm):
    psi = _psi(3, 8, 4)
    mc = rademacher_linear(psi, 0.8, num_outputs=3, norm=norm, method="mc", n_draws=12, seed=5)
    cv = rademacher_linear(psi, 0.8, num_outputs=3, norm=norm, method="cvxpy", n_draws=12, seed=5)
    assert cv.value == pytest.approx(mc.value, rel=1e-6) and cv.stderr == pytest.approx(mc.stderr, rel=1e-4)
    assert cv.method == "cvxpy" and cv.delta_mc is None
    assert cv.upper == pytest.approx(closed_form_bounds(psi, 0.8, 3, norm)[1])


def test_cvxpy_intersection_huge_radius_equals_ball_frobenius():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(7, 4))
    w0 = 0.3 * rng.normal(size=(2, 4))
    ball = rademacher_linear(psi, 1.5, num_outputs=2, norm="frobenius", method="mc", n_draws=15, seed=3)
    inter = rademacher_ball_intersection(psi, 1.5, w0, 1e3, num_outputs=2, norm="frobenius", n_draws=15, seed=3)
    assert inter.value == pytest.approx(ball.value, rel=1e-6)
    small = rademacher_ball_intersection(psi, 1.5, w0, 0.4, num_outputs=2, norm="frobenius", n_draws=15, seed=3)
    assert small.value < 0.5 * ball.value
    assert small.upper >= small.value and small.lower is None


def test_cvxpy_intersection_exact_row_ball():
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(3, 3))
    w0 = 0.2 * rng.normal(size=(2, 3))
    exact_ball = rademacher_linear(psi, 1.0, num_outputs=2, norm="row", method="exact").value
    big = rademacher_ball_intersection(psi, 1.0, w0, 1e3, num_outputs=2, norm="row", method="exact")
    assert big.value == pytest.approx(exact_ball, rel=1e-6)
    small = rademacher_ball_intersection(psi, 1.0, w0, 0.3, num_outputs=2, norm="row", method="exact")
    assert small.value < exact_ball
    # r = 0: the single point W0, whose R is 0 (the sup is linear in Sigma)
    point = rademacher_ball_intersection(psi, 1.0, w0, 0.0, num_outputs=2, norm="row", method="exact")
    assert point.value == pytest.approx(0.0, abs=1e-6)


def test_cvxpy_intersection_empty_class_raises():
    with pytest.raises(ValueError, match="empty"):
        rademacher_ball_intersection(np.ones((3, 2)), 1.0, np.full((1, 2), 5.0), 0.5)


# ---------------------------------------------------------------------------------------------------------
# validation, serialisation, benchmark smoke
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"features": np.array([[1.0, np.nan]])}, "NaN"),
    ({"features": np.array([[1.0, np.inf]])}, "NaN or infinite"),
    ({"features": np.zeros((0, 3))}, "no rows"),
    ({"features": np.zeros(3)}, "2-D"),
    ({"radius": -1.0}, "radius"),
    ({"radius": float("nan")}, "radius"),
    ({"num_outputs": 0}, "num_outputs"),
    ({"norm": "spectral"}, "norm"),
    ({"method": "magic"}, "method"),
    ({"n_draws": 0}, "n_draws"),
    ({"delta_mc": 0.0}, "delta_mc"),
    ({"delta_mc": 1.0}, "delta_mc"),
])
def test_validation_errors(kwargs, match):
    args = {"features": np.ones((4, 2)), "radius": 1.0}
    args.update(kwargs)
    features, radius = args.pop("features"), args.pop("radius")
    with pytest.raises(ValueError, match=match):
        rademacher_linear(features, radius, **args)


def test_validation_finite_and_closed_helpers():
    with pytest.raises(ValueError, match="NaN"):
        rademacher_finite(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        rademacher_finite_vector(np.ones((2, 3)))
    with pytest.raises(ValueError, match="delta_mc"):
        rademacher_finite(np.ones((2, 3)), method="mc", delta_mc=2.0)
    with pytest.raises(ValueError, match="num_outputs"):
        closed_form_bounds(np.ones((2, 2)), 1.0, 0)


def test_to_dict_is_json():
    res = rademacher_linear(_psi(0, 6, 2), 1.0, n_draws=1)  # one draw: stderr undefined -> None
    d = res.to_dict()
    json.dumps(d)
    assert d["stderr"] is None and d["method"] == "mc" and set(d) == {f for f in ErcSummary.__annotations__}
    json.dumps(rademacher_linear(_psi(0, 6, 2), 1.0, method="exact").to_dict())


def test_benchmark_smoke(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # repo root holds benchmarks/
    from benchmarks.bench_rademacher import main

    out = main(["--n", "64", "--d", "8", "--m", "16", "--exact-n", "6", "--cvxpy-draws", "1",
                "--cvxpy-shape", "10", "4", "2", "--repeats", "1", "--results-path", str(tmp_path / "R.md")])
    assert {r["kind"] for r in out["rows"]} >= {"mc", "exact"}
    assert out["rows"][0]["ratio"] > 0 and "ratio" in capsys.readouterr().out
    assert not (tmp_path / "R.md").exists()
