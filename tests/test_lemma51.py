"""Lemma 5.1 (THEORY §2) and the coupled SciLT class (THEORY §1-§2), checked by exact enumeration.

Statements: for classes F1, F2 and real c, R(F1 + F2) <= R(F1) + R(F2) with equality when f1 and f2 range
independently; R(cF) = |c| R(F); R(conv F) = R(F); F subset G => R(F) <= R(G). The coupled class reachable by
one (W1, W2, alpha) lies inside F_{N-1} + F_N, so its R is <= the sum; its per-draw sup in closed form must
agree with an independent cvxpy solution.
"""

from __future__ import annotations

import itertools
import json

import cvxpy as cp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scilt_theory.rademacher import (
    coupled_sup_closed,
    coupled_sup_cvxpy,
    rademacher_coupled_scilt,
    rademacher_finite,
    rademacher_linear,
    rademacher_signs,
)


def _finite(seed: int, size: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(size, n))


def _exact(values: np.ndarray) -> float:
    return rademacher_finite(values).value


# ---------------------------------------------------------------------------------------------------------
# Lemma 5.1 on finite classes (exact enumeration)
# ---------------------------------------------------------------------------------------------------------

@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), a1=st.integers(1, 5), a2=st.integers(1, 5), n=st.integers(1, 9))
def test_lemma51_sum_equality_for_independent_finite_classes(seed, a1, a2, n):
    f1, f2 = _finite(seed, a1, n), _finite(seed + 1, a2, n)
    minkowski = (f1[:, None, :] + f2[None, :, :]).reshape(a1 * a2, n)   # f1, f2 range independently
    assert _exact(minkowski) == pytest.approx(_exact(f1) + _exact(f2), rel=1e-12, abs=1e-14)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 9))
def test_lemma51_subadditivity_for_coupled_finite_classes(seed, size, n):
    f1, f2 = _finite(seed, size, n), _finite(seed + 7, size, n)
    diagonal = f1 + f2                                                  # {f1_j + f2_j}: coupled pairs only
    assert _exact(diagonal) <= _exact(f1) + _exact(f2) + 1e-12


def test_lemma51_subadditivity_is_strict_for_a_coupled_pair():
    f1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    f2 = -f1                                                            # f1_j + f2_j = 0: R = 0
    assert _exact(f1 + f2) == pytest.approx(0.0, abs=1e-15)
    assert _exact(f1) + _exact(f2) == pytest.approx(0.5)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 9),
       c=st.sampled_from([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0]))
def test_lemma51_scaling(seed, size, n, c):
    f = _finite(seed, size, n)
    assert _exact(c * f) == pytest.approx(abs(c) * _exact(f), rel=1e-12, abs=1e-14)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 5), n=st.integers(1, 9), extra=st.integers(1, 6))
def test_lemma51_convex_hull(seed, size, n, extra):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(size, n))
    weights = rng.dirichlet(np.ones(size), size=extra)                  # convex combinations as new members
    hull = np.concatenate([f, weights @ f])
    assert _exact(hull) == pytest.approx(_exact(f), rel=1e-12, abs=1e-14)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), size=st.integers(2, 8), n=st.integers(1, 9))
def test_lemma51_subset_monotone(seed, size, n):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(size, n))
    subset = g[rng.choice(size, size=rng.integers(1, size), replace=False)]
    assert _exact(subset) <= _exact(g) + 1e-12


def _joint_sup(psi1, psi2, sig, b1, b2, norm):
    """sup over U in ball(b1), V in ball(b2) of (1/n) <Sigma, psi1 U^T + psi2 V^T>, by cvxpy."""
    n, k = sig.shape
    u, v = cp.Variable((k, psi1.shape[1])), cp.Variable((k, psi2.shape[1]))
    if norm == "row":
        cons = [cp.norm(u, 2, axis=1) <= b1, cp.norm(v, 2, axis=1) <= b2]
    else:
        cons = [cp.norm(u, "fro") <= b1, cp.norm(v, "fro") <= b2]
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(sig, psi1 @ u.T + psi2 @ v.T)) / n), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return prob.value


@pytest.mark.parametrize("norm", ["row", "frobenius"])
def test_lemma51_sum_equality_for_linear_classes_on_different_features(norm):
    # {U psi1 + V psi2 : U, V independent} on different feature matrices: enumerate all Sigma, solve jointly.
    rng = np.random.default_rng(3)
    n, k = 3, 2
    psi1, psi2 = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    b1, b2 = 1.3, 0.6
    sups = [_joint_sup(psi1, psi2, np.array(s).reshape(n, k), b1, b2, norm)
            for s in itertools.product((-1.0, 1.0), repeat=n * k)]
    separate = (rademacher_linear(psi1, b1, num_outputs=k, norm=norm, method="exact").value
                + rademacher_linear(psi2, b2, num_outputs=k, norm=norm, method="exact").value)
    assert float(np.mean(sups)) == pytest.approx(separate, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------
# The coupled SciLT class (THEORY §1-§2)
# ---------------------------------------------------------------------------------------------------------

def _naive_coupled(p1, p2, k, s, grid):
    """Mean over all Sigma of the per-draw sups (coupled via an explicit alpha scan, and the sum)."""
    n = p1.shape[0]
    alphas = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid)
    coupled, total = [], []
    for signs in itertools.product((-1.0, 1.0), repeat=n * k):
        sig = np.array(signs).reshape(n, k)
        a, b = p1.T @ sig, p2.T @ sig                                      # (d, K): columns a_c, b_c
        sa = np.linalg.norm(a, axis=0).sum()
        inner = max(np.linalg.norm(al * a + (1 - al) * b, axis=0).sum() for al in alphas)
        coupled.append(s / n * (sa + inner))
        total.append(s / n * (2 * sa + np.linalg.norm(b, axis=0).sum()))
    return float(np.mean(coupled)), float(np.mean(total))


@pytest.mark.parametrize("n,k,grid", [(4, 1, None), (3, 2, None), (2, 3, None), (3, 2, (0.25, 0.5)),
                                      (4, 1, (0.7,)), (1, 2, None)])
def test_coupled_exact_matches_naive_enumeration(n, k, grid):
    rng = np.random.default_rng(n * 10 + k)
    p1, p2 = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    res = rademacher_coupled_scilt(p1, p2, k, 2.5, method="exact", alpha_grid=grid)
    want_c, want_s = _naive_coupled(p1, p2, k, 2.5, grid)
    assert res.value == pytest.approx(want_c, rel=1e-12)
    assert res.sum_value == pytest.approx(want_s, rel=1e-12)
    assert res.upper == res.value and res.stderr == 0.0 and res.method == "exact"


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), k=st.integers(1, 3), scale=st.floats(0.1, 30.0))
def test_coupled_le_sum_exact(seed, n, k, scale):
    n = min(n, 12 // k)
    rng = np.random.default_rng(seed)
    p1, p2 = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    res = rademacher_coupled_scilt(p1, p2, k, scale, method="exact")
    assert res.value <= res.sum_value * (1 + 1e-12)
    assert 0.0 < res.ratio <= 1.0 + 1e-12
    # the sum is Lemma 5.1's R(F_{N-1}) + R(F_N) with row radii 2s and s
    r1 = rademacher_linear(p1, 2 * scale, num_outputs=k, norm="row", method="exact").value
    r2 = rademacher_linear(p2, scale, num_outputs=k, norm="row", method="exact").value
    assert res.sum_value == pytest.approx(r1 + r2, rel=1e-12)


def test_coupled_alpha_endpoint_identities():
    rng = np.random.default_rng(5)
    p1, p2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    s, k = 1.5, 2
    full = rademacher_coupled_scilt(p1, p2, k, s, method="exact")
    ends = rademacher_coupled_scilt(p1, p2, k, s, method="exact", alpha_grid=(0.0, 1.0))
    assert ends.value == pytest.approx(full.value, rel=1e-13)
    row = lambda p, r: rademacher_linear(p, r, num_outputs=k, norm="row", method="exact").value  # noqa: E731
    # alpha = 1: U = s(W1 + W2), V = 0 -> the row ball of radius 2s on psi1
    assert rademacher_coupled_scilt(p1, p2, k, s, method="exact", alpha_grid=(1.0,)).value == \
        pytest.approx(row(p1, 2 * s), rel=1e-12)
    # alpha = 0: U = s W2, V = s W1 independent -> Lemma 5.1 equality R_row(psi1, s) + R_row(psi2, s)
    assert rademacher_coupled_scilt(p1, p2, k, s, method="exact", alpha_grid=(0.0,)).value == \
        pytest.approx(row(p1, s) + row(p2, s), rel=1e-12)
    inner = rademacher_coupled_scilt(p1, p2, k, s, method="exact", alpha_grid=(0.3, 0.6))
    assert inner.value <= full.value * (1 + 1e-12)


def test_coupled_identical_features_ratio_two_thirds():
    p = np.random.default_rng(2).normal(size=(5, 3))
    res = rademacher_coupled_scilt(p, p, 2, 1.0, method="exact")
    assert res.ratio == pytest.approx(2.0 / 3.0, rel=1e-12)


@pytest.mark.parametrize("grid", [None, (0.2, 0.9)])
def test_coupled_cvxpy_matches_closed_per_draw(grid):
    rng = np.random.default_rng(11)
    p1, p2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    signs = rng.choice([-1.0, 1.0], size=(4, 6, 3))
    closed, _ = coupled_sup_closed(p1, p2, signs, 3.0, grid)
    solved = coupled_sup_cvxpy(p1, p2, signs, 3.0, grid)
    np.testing.assert_allclose(solved, closed, rtol=1e-6)


def test_coupled_cvxpy_method_matches_mc_on_same_draws():
    rng = np.random.default_rng(12)
    p1, p2 = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    mc = rademacher_coupled_scilt(p1, p2, 2, 1.0, method="mc", n_draws=6, seed=4)
    cv = rademacher_coupled_scilt(p1, p2, 2, 1.0, method="cvxpy", n_draws=6, seed=4)
    assert cv.value == pytest.approx(mc.value, rel=1e-6) and cv.sum_value == pytest.approx(mc.sum_value, rel=1e-12)
    signs = torch.cat(list(rademacher_signs(7, 6, num_columns=2, seed=4, dtype=torch.float64)))
    closed, total = coupled_sup_closed(p1, p2, signs.numpy().transpose(0, 2, 1), 1.0)
    assert mc.value == pytest.approx(closed.mean(), rel=1e-12) and mc.sum_value == pytest.approx(total.mean())


@pytest.mark.parametrize("grid", [None, (0.5,)])
def test_coupled_mc_within_4_stderr_and_certificate(grid):
    rng = np.random.default_rng(13)
    p1, p2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    p1 /= np.linalg.norm(p1, axis=1, keepdims=True)
    exact = rademacher_coupled_scilt(p1, p2, 3, 4.0, method="exact", alpha_grid=grid)
    mc = rademacher_coupled_scilt(p1, p2, 3, 4.0, method="mc", n_draws=3000, seed=1, alpha_grid=grid)
    assert abs(mc.value - exact.value) <= 4 * mc.stderr
    assert abs(mc.sum_value - exact.sum_value) <= 4 * mc.sum_stderr
    for seed in range(5):
        small = rademacher_coupled_scilt(p1, p2, 3, 4.0, method="mc", n_draws=100, seed=seed, alpha_grid=grid)
        assert small.upper >= exact.value


def test_coupled_validation_and_json():
    p = np.ones((3, 2))
    with pytest.raises(ValueError, match="same shape"):
        rademacher_coupled_scilt(p, np.ones((3, 4)), 2, 1.0)
    with pytest.raises(ValueError, match="closed form"):
        rademacher_coupled_scilt(p, p, 2, 1.0, method="closed")
    with pytest.raises(ValueError, match="alpha_grid"):
        rademacher_coupled_scilt(p, p, 2, 1.0, alpha_grid=(0.5, 1.5))
    with pytest.raises(ValueError, match="num_classes"):
        rademacher_coupled_scilt(p, p, 0, 1.0)
    with pytest.raises(ValueError, match="max_exact_signs"):
        rademacher_coupled_scilt(np.ones((9, 2)), np.ones((9, 2)), 3, 1.0, method="exact")
    d = rademacher_coupled_scilt(p, p, 2, 1.0, n_draws=20, alpha_grid=(0.5,)).to_dict()
    json.dumps(d)
    assert {"value", "stderr", "upper", "sum_value", "ratio", "method", "n", "num_outputs", "n_draws"} <= set(d)
    zero = rademacher_coupled_scilt(np.zeros((3, 2)), np.zeros((3, 2)), 2, 1.0, method="exact")
    assert zero.value == 0.0 and zero.ratio is None and zero.to_dict()["ratio"] is None


def test_coupled_mc_certificate_formula():
    # McDiarmid (THEORY §5 argument): sign (i, c) moves a coupled draw by <= (2s/n)(|psi1_i| + max(|psi1_i|,
    # |psi2_i|)), so the deviation is (s/n) sqrt(2 K sum_i (...)^2 ln(1/delta)/m); min'ed with the closed sum.
    rng = np.random.default_rng(21)
    p1, p2 = rng.normal(size=(40, 3)), rng.uniform(0.2, 3.0, size=(40, 1)) * rng.normal(size=(40, 3))
    s, k, m, delta = 2.0, 4, 50, 0.05
    res = rademacher_coupled_scilt(p1, p2, k, s, method="mc", n_draws=m, seed=0, delta_mc=delta)
    n1, n2 = np.linalg.norm(p1, axis=1), np.linalg.norm(p2, axis=1)
    dev = s / 40 * np.sqrt(2 * k * ((n1 + np.maximum(n1, n2)) ** 2).sum() * np.log(1 / delta) / m)
    closed = 2 * s * k / 40 * np.sqrt((n1**2).sum()) + s * k / 40 * np.sqrt((n2**2).sum())
    assert res.upper == pytest.approx(min(res.value + dev, closed), rel=1e-12)
    assert res.value + dev < closed  # the certificate, not the closed form, is the active side here
    assert res.delta_mc == delta and res.n_draws == m
