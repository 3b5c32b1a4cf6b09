"""Every statement of THEORY §2-§5 in scilt_theory.bounds against hand-computed or enumerated oracles.

Test names map to statements: test_lemma51_* (§2), test_lemma52a/b/c_* (§3), test_theorem53_*,
test_corollary54_*, test_grid_* (§4), test_mc_split_* (§5), test_validation_* (bad input), test_fused_*
(the end-to-end entry point).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scilt_theory import bounds as B
from scilt_theory.bounds import (
    confidence_term,
    contraction_factor,
    corollary54_class_bound,
    envelope,
    lemma51_scale,
    lemma51_sum,
    margin_lipschitz,
    theorem53_bound,
    theorem53_bound_bounded_features,
    theorem53_grid_bound,
    uniform_deviation_bound,
    vector_contraction,
)
from scilt_theory.confidence import confidence_split_from_parts, split_confidence
from scilt_theory.erc import ErcSummary
from scilt_theory.grid import BoundGrid
from scilt_theory.losses import margins, ramp_loss, zero_one_error
from scilt_theory.metrics import class_groups
from scilt_theory.rademacher import closed_form_bounds
from scilt_theory.statements import Estimation, Hypothesis, Sample, build_context, fused_model_bounds
from scilt_theory.statements.complexities import Complexities
from scilt_theory.statements.margin import MARGIN

SQRT2 = math.sqrt(2.0)


# ------------------------------------------------------------------ independent oracles (enumeration)

def all_signs(n: int) -> np.ndarray:
    return np.array(list(itertools.product((-1.0, 1.0), repeat=n)))


def exact_row_erc(psi: np.ndarray, radius: float, k: int) -> float:
    """R_hat^v(W_row(B)) = (B K / n) E ||Psi^T sigma||, by enumerating all 2^n sign vectors."""
    sig = all_signs(psi.shape[0])
    return radius * k / psi.shape[0] * float(np.mean(np.linalg.norm(sig @ psi, axis=1)))


def unit_sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ Lemma 5.1 (THEORY §2)

def test_lemma51_sum_of_floats_is_exact():
    assert lemma51_sum(0.25, 0.5) == 0.75
    assert lemma51_sum(Fraction(1, 3), Fraction(1, 6)) == pytest.approx(0.5)


def test_lemma51_sum_of_results_adds_each_field():
    a = ErcSummary(value=0.1, upper=0.2, stderr=0.01, lower=0.05, method="mc", n=10, num_outputs=3, norm="row")
    b = {"value": 0.3, "upper": 0.4, "stderr": 0.02, "lower": 0.15, "method": "mc", "n": 10, "num_outputs": 3,
         "norm": "row"}
    s = lemma51_sum(a, b)
    assert (s.value, s.upper, s.stderr, s.lower) == pytest.approx((0.4, 0.6, 0.03, 0.2))
    assert s.method == "mc" and s.n == 10
    assert lemma51_sum(a, ErcSummary(value=None, upper=1.0, method="closed")).value is None


def test_one_erc_record_from_the_estimators_to_the_bounds():
    # the estimators return the record the bounds carry; as the bounds carry it, only a certified Monte Carlo value
    # keeps its draws and failure probability (a cvxpy mean has draws but no certificate)
    from scilt_theory.rademacher import rademacher_linear

    psi = np.random.default_rng(1).normal(size=(8, 3))
    mc = rademacher_linear(psi, 1.0, num_outputs=2, norm="row", method="mc", n_draws=20, seed=0, delta_mc=0.1)
    cv = rademacher_linear(psi, 1.0, num_outputs=2, norm="row", method="cvxpy", n_draws=3, seed=0)
    assert isinstance(mc, ErcSummary) and isinstance(cv, ErcSummary) and cv.n_draws == 3
    assert ErcSummary.from_result(mc) == mc and ErcSummary.from_result(mc.to_dict()) == mc
    carried = ErcSummary.from_result(cv)
    assert (carried.n_draws, carried.delta_mc, carried.upper) == (None, None, cv.upper)
    with pytest.raises(ValueError, match="must be >= 0 to enter a bound"):
        ErcSummary.from_result({"value": None, "upper": -1e-3})
    with pytest.raises(ValueError, match="without a finite upper value"):
        ErcSummary.from_result({"value": 0.1, "upper": float("inf")})


def test_lemma51_scale_is_abs_c_times_r():
    assert lemma51_scale(0.3, -2.0) == pytest.approx(0.6)
    r = ErcSummary(value=0.1, upper=0.2, stderr=0.01, lower=0.05, radius=1.0)
    s = lemma51_scale(r, 3.0)
    assert (s.value, s.upper, s.stderr, s.lower, s.radius) == pytest.approx((0.3, 0.6, 0.03, 0.15, 3.0))


def test_lemma51_sum_equality_for_independent_classes_by_enumeration():
    # the sup over U x V separates per sign draw, so the exact ERC of the sum class is the sum of both
    rng = np.random.default_rng(3)
    p1, p2 = rng.normal(size=(7, 2)), rng.normal(size=(7, 3))
    sig = all_signs(7)
    joint = float(np.mean(1.5 * np.linalg.norm(sig @ p1, axis=1) + 0.5 * np.linalg.norm(sig @ p2, axis=1))) / 7
    assert lemma51_sum(exact_row_erc(p1, 1.5, 1), exact_row_erc(p2, 0.5, 1)) == pytest.approx(joint)


# ------------------------------------------------------------------ Lemma 5.2 (THEORY §3)

def test_lemma52a_envelope_hand_values():
    psi = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])  # sum ||psi_i||^2 = 26, n = 3
    lo, up = closed_form_bounds(psi, radius=2.0, num_outputs=3, norm="frobenius")
    assert up == pytest.approx(2.0 / 3.0 * math.sqrt(3 * 26))
    assert lo == pytest.approx(up / SQRT2)
    lo, up = closed_form_bounds(psi, radius=2.0, num_outputs=3, norm="row")
    assert up == pytest.approx(2.0 * 3 / 3.0 * math.sqrt(26))
    assert lo == pytest.approx(up / SQRT2)


@given(st.integers(1, 9), st.integers(1, 3), st.integers(1, 4), st.integers(0, 10_000))
def test_lemma52a_envelope_brackets_exact_enumeration(n, d, k, seed):
    psi = np.random.default_rng(seed).normal(size=(n, d))
    exact = exact_row_erc(psi, 1.7, k)
    lo, up = closed_form_bounds(psi, 1.7, num_outputs=k, norm="row")
    assert lo - 1e-12 <= exact <= up + 1e-12


def test_lemma52a_envelope_is_the_one_closed_form():
    # the scalar formula (bounds.envelope, of S2 = sum ||psi_i||^2) is what the "closed" estimator returns
    rademacher_linear = pytest.importorskip("scilt_theory.rademacher").rademacher_linear
    psi = np.random.default_rng(0).normal(size=(30, 5))
    s2 = float(np.sum(psi * psi))
    for norm in ("row", "frobenius"):
        res = rademacher_linear(psi, 2.5, num_outputs=4, norm=norm, method="closed")
        lo, up = envelope(s2, 30, 2.5, 4, norm)
        assert (res.upper, res.lower) == pytest.approx((up, lo), rel=1e-12)
    assert envelope(26.0, 3, 2.0, 3, "frobenius")[1] == pytest.approx(2.0 / 3.0 * math.sqrt(3 * 26))
    assert envelope(26.0, 3, 2.0, 3, "row")[1] == pytest.approx(2.0 * 3 / 3.0 * math.sqrt(26))
    with pytest.raises(ValueError, match="n must be"):
        envelope(1.0, 0, 1.0)


def test_lemma52b_constants():
    assert margin_lipschitz(0.5) == pytest.approx(SQRT2 / 0.5)
    assert vector_contraction(3.0, 0.25) == pytest.approx(SQRT2 * 0.75)
    assert contraction_factor(0.5) == pytest.approx(4.0)  # sqrt2 * sqrt2 / rho = 2 / rho
    assert contraction_factor(2.0) == pytest.approx(1.0)


@given(st.integers(2, 5), st.integers(0, 10_000), st.floats(0.05, 3.0))
def test_lemma52b_margin_ramp_is_sqrt2_over_rho_lipschitz(k, seed, rho):
    rng = np.random.default_rng(seed)
    v, w = rng.normal(size=(2, 50, k))
    y = rng.integers(0, k, size=50)
    lhs = np.abs(ramp_loss(margins(v, y), rho) - ramp_loss(margins(w, y), rho))
    assert np.all(lhs <= margin_lipschitz(rho) * np.linalg.norm(v - w, axis=1) + 1e-12)


def test_lemma52b_margin_lipschitz_constant_is_attained():
    # K = 2, y = 0: M(v) = v_0 - v_1 moves by 2 eps for d = (eps, -eps) of norm sqrt2 eps
    rho, eps = 1.0, 0.1
    v, w = np.array([[0.5, 0.0]]), np.array([[0.5 + eps, -eps]])
    ratio = (ramp_loss(margins(v, [0]), rho) - ramp_loss(margins(w, [0]), rho))[0] / (SQRT2 * eps)
    assert ratio == pytest.approx(margin_lipschitz(rho))


@pytest.mark.parametrize("seed", range(4))
def test_lemma52b_contraction_holds_on_random_finite_class_by_enumeration(seed):
    # R_hat(Phi_rho o M o F) <= (2/rho) R_hat^v(F) on a finite class F of K-vectors over n points
    rng = np.random.default_rng(seed)
    n, k, size, rho = 5, 3, 6, 0.7
    fvals = rng.normal(size=(size, n, k))                     # f(x_i) in R^K for each f in F
    y = rng.integers(0, k, size=n)
    loss = np.stack([ramp_loss(margins(f, y), rho) for f in fvals])      # (size, n)
    r_loss = np.mean(np.max(all_signs(n) @ loss.T, axis=1)) / n
    sig = all_signs(n * k).reshape(-1, n, k)
    r_vec = np.mean(np.max(np.einsum("snk,fnk->sf", sig, fvals), axis=1)) / n
    assert r_loss <= contraction_factor(rho) * r_vec + 1e-12


def test_lemma52c_uniform_deviation_hand_value():
    res = uniform_deviation_bound(0.1, 0.05, n=50, delta=0.1)
    assert res.complexity == pytest.approx(0.1)
    assert res.confidence == pytest.approx(3 * math.sqrt(math.log(20.0) / 100))
    assert res.bound == pytest.approx(0.2 + 3 * math.sqrt(math.log(20.0) / 100))


def test_lemma52c_confidence_term_hand_values():
    assert confidence_term(200, 0.05) == pytest.approx(3 * math.sqrt(math.log(40.0) / 400))
    assert confidence_term(200, 0.05, grid_size=4, num_classes=10) == pytest.approx(
        3 * math.sqrt(math.log(1600.0) / 400))


# ------------------------------------------------------------------ Theorem 5.3 (THEORY §4)

def test_theorem53_hand_value():
    t = theorem53_bound(0.2, 0.01, 0.02, n=1000, rho=0.5, delta=0.05)
    assert t.complexity == pytest.approx(4 / 0.5 * 0.03)
    assert t.confidence == pytest.approx(3 * math.sqrt(math.log(2 / 0.05) / 2000))
    assert t.bound == pytest.approx(0.2 + 0.24 + 3 * math.sqrt(math.log(40.0) / 2000))
    assert (t.rho, t.delta, t.n, t.grid_size, t.statement) == (0.5, 0.05, 1000, 1, "Theorem 5.3")
    assert not t.vacuous


@given(st.floats(0, 1), st.floats(0, 2), st.floats(0, 2), st.integers(1, 10**6), st.floats(0.01, 10),
       st.floats(1e-6, 0.99), st.integers(1, 1000))
def test_theorem53_total_is_sum_of_terms_and_at_least_margin_loss(e, r1, r2, n, rho, delta, m):
    t = theorem53_bound(e, r1, r2, n, rho, delta, grid_size=m)
    assert t.bound == pytest.approx(t.train_margin_loss + t.complexity + t.confidence)
    assert t.bound >= e and t.complexity >= 0 and t.confidence > 0
    assert t.vacuous == (t.bound > 1)


def test_theorem53_vacuous_flag():
    assert theorem53_bound(0.5, 0.5, 0.5, n=10, rho=0.1, delta=0.05).vacuous
    assert not theorem53_bound(0.01, 1e-4, 1e-4, n=10**6, rho=1.0, delta=0.05).vacuous


def test_theorem53_grid_bound_is_at_least_the_training_error():
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=(200, 4)), rng.integers(0, 4, size=200)
    res = theorem53_grid_bound(margins(scores, labels), 0.01, 0.01, 0.05, BoundGrid.geometric(0.1, 2, 5), 1, 1)
    assert res.best.bound >= zero_one_error(scores, labels)


def test_theorem53_bounded_features_hand_value_and_tighter_confidence():
    t = theorem53_bound_bounded_features(0.1, n=400, rho=0.5, delta=0.05, radius_penult=2.0, radius_final=1.0,
                                         num_outputs=3, feature_norm_bound=1.0, norm="row", grid_size=4)
    assert t.complexity == pytest.approx(4 / 0.5 * (2.0 + 1.0) * 3 / 20)
    assert t.confidence == pytest.approx(math.sqrt(math.log(4 / 0.05) / 800))
    assert t.confidence < confidence_term(400, 0.05, grid_size=4)
    f = theorem53_bound_bounded_features(0.1, n=400, rho=0.5, delta=0.05, radius_penult=2.0, radius_final=1.0,
                                         num_outputs=4, norm="frobenius", num_classes=3)
    assert f.complexity == pytest.approx(8 * 3 * 2 / 20)
    assert f.confidence == pytest.approx(math.sqrt(math.log(3 / 0.05) / 800))


def test_theorem53_bounded_features_complexity_dominates_contract_with_closed_form():
    # with ||psi_i|| = 1 the closed form of Lemma 5.2(a) equals the a.s. bound used by the tighter form
    psi = unit_sphere(np.random.default_rng(2), 50, 4)
    up = closed_form_bounds(psi, 1.0, 3, "row")[1]
    contract = theorem53_bound(0.1, 2 * up, up, 50, 0.5, 0.05)
    tighter = theorem53_bound_bounded_features(0.1, 50, 0.5, 0.05, radius_penult=2, radius_final=1, num_outputs=3)
    assert tighter.complexity == pytest.approx(contract.complexity)
    assert tighter.bound < contract.bound


# ------------------------------------------------------------------ Corollary 5.4 (THEORY §4)

def test_corollary54_class_bound_hand_value():
    t = corollary54_class_bound(0.3, 0.1, 0.05, n_c=12, rho=2.0, delta=0.1, num_classes=5, grid_size=3)
    assert t.complexity == pytest.approx(2.0 * 0.15)
    assert t.confidence == pytest.approx(3 * math.sqrt(math.log(2 * 5 * 3 / 0.1) / 24))
    assert t.bound == pytest.approx(0.3 + 0.3 + t.confidence)
    assert t.num_classes == 5 and t.statement == "Corollary 5.4"


def _toy_corollary(**kwargs):
    """The corollary54 statement's records by target, on a toy sample with given unit complexities (both maps):
    class 0: 4 samples, class 1: 3, class 2: none, class 3: 1."""
    scores = np.array([[3, 0, 0, 0], [2, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0],
                       [0, 2, 0, 0], [0, 3, 1, 0], [1, 0, 0, 0], [0, 0, 0, 2]], dtype=float)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 3])
    psi = np.eye(8, 4)
    ctx = build_context(Sample(psi, psi, scores, labels, 4, **kwargs), Hypothesis(2.0, 1.0),
                        Estimation(BoundGrid(rhos=(0.5, 1.0)), delta=0.1, n_draws=0))
    rc = {0: 0.05, 1: 0.1, 3: 0.2}
    ctx = dataclasses.replace(ctx, complexities=Complexities.given(4, (0.1, 0.1), {c: (u, u) for c, u in rc.items()}))
    return ctx, {r.target: r for r in MARGIN["corollary54"].evaluate(ctx, 0.1)}


def test_corollary54_class_without_samples_gets_none_and_reason():
    _, res = _toy_corollary()
    r = res["class:2"]
    assert r.bound is None and r.reason == "no training samples" and not r.terms
    with pytest.raises(ValueError, match="no training samples"):
        corollary54_class_bound(0.0, 0.1, 0.1, n_c=0, rho=1.0, delta=0.1, num_classes=3)


def test_corollary54_per_class_bound_is_best_over_grid_and_at_least_its_terms():
    _, res = _toy_corollary()
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 3])
    for c in (0, 1, 3):
        t = res[f"class:{c}"].terms
        bound = res[f"class:{c}"].bound
        assert bound >= max(t["train_margin_loss"], t["complexity"], t["confidence"])
        assert bound == pytest.approx(t["train_margin_loss"] + t["complexity"] + t["confidence"])
        assert t["n"] == int(np.sum(labels == c)) and t["num_classes"] == 4 and t["grid_size"] == 2
        rc = {0: 0.05, 1: 0.1, 3: 0.2}[c]
        candidates = [corollary54_class_bound(t_emp, 2 * rc, rc, t["n"], rho, 0.1, 4, grid_size=2).bound
                      for rho, t_emp in [(r, _class_ramp(c, r)) for r in (0.5, 1.0)]]
        assert bound == pytest.approx(min(candidates))
        assert t["rc_penult"] == pytest.approx(2 * rc) and t["rc_final"] == pytest.approx(rc)


def _class_ramp(c, rho):
    scores = np.array([[3, 0, 0, 0], [2, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0],
                       [0, 2, 0, 0], [0, 3, 1, 0], [1, 0, 0, 0], [0, 0, 0, 2]], dtype=float)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 3])
    return float(np.mean(ramp_loss(margins(scores, labels)[labels == c], rho)))


def test_corollary54_group_is_mean_of_class_bounds_and_worst_is_max():
    _, res = _toy_corollary(class_groups=["a", "a", "a", "b"])
    b = [res[f"class:{c}"].bound for c in range(4)]
    a = res["group:a"]
    assert a.bound == pytest.approx((b[0] + b[1]) / 2)          # class 2 has no bound
    assert a.terms["bound_all_classes"] == pytest.approx((b[0] + b[1] + 1.0) / 3)
    assert a.terms["num_classes"] == 3 and a.terms["num_classes_with_bound"] == 2
    assert res["group:b"].bound == pytest.approx(b[3])
    worst = max((x, c) for c, x in enumerate(b) if x is not None)
    assert res["worst_class"].bound == pytest.approx(worst[0]) and res["worst_class"].terms["class"] == worst[1]


def test_corollary54_groups_from_thresholds():
    assert class_groups([101, 100, 20, 19, 0]) == ["many", "medium", "medium", "few", "few"]
    assert class_groups([5, 3], many_threshold=4, few_threshold=4) == ["many", "few"]
    ctx, res = _toy_corollary(class_counts=[500, 50, 0, 5])
    assert list(ctx.class_groups) == ["many", "medium", "few", "few"]
    assert res["group:few"].bound == pytest.approx(res["class:3"].bound)
    _, empty = _toy_corollary(class_counts=[50, 50, 50, 50])
    assert empty["group:many"].bound is None and empty["group:many"].reason == "no classes in this group"


def test_corollary54_union_over_classes_costs_ln_k():
    t1 = corollary54_class_bound(0.1, 0.0, 0.0, 100, 1.0, 0.1, num_classes=1)
    t7 = corollary54_class_bound(0.1, 0.0, 0.0, 100, 1.0, 0.1, num_classes=7)
    assert (t7.confidence / 3) ** 2 * 200 - (t1.confidence / 3) ** 2 * 200 == pytest.approx(math.log(7))


# ------------------------------------------------------------------ the grid (THEORY §4)

def test_grid_geometric_values_and_size():
    g = BoundGrid.geometric(0.1, 10.0, 5, radii_penult=(1, 2), radii_final=(1, 2, 4))
    assert g.rhos == pytest.approx((0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0))
    assert g.size == 5 * 2 * 3 == len(list(g.points()))
    assert BoundGrid(rhos=(2.0, 0.5)).rhos == (0.5, 2.0)


def test_grid_costs_ln_m_in_the_confidence_term():
    n, delta, m = 300, 0.05, 12
    c1, cm = confidence_term(n, delta), confidence_term(n, delta, grid_size=m)
    # 3 sqrt(ln(2m/delta)/(2n)): squaring gives ln(2/delta) + ln(m)
    assert (cm / 3) ** 2 * 2 * n == pytest.approx(math.log(2 / delta) + math.log(m))
    assert (cm / 3) ** 2 * 2 * n - (c1 / 3) ** 2 * 2 * n == pytest.approx(math.log(m))
    assert cm == pytest.approx(confidence_term(n, delta / m))
    grid = BoundGrid.geometric(0.1, 1.0, m)
    res = theorem53_grid_bound(np.linspace(-1, 2, n), 0.01, 0.01, delta, grid, 1.0, 1.0)
    assert all(t.confidence == pytest.approx(cm) and t.grid_size == m for t in res.evaluated)


@given(st.integers(0, 10_000), st.integers(1, 8))
def test_grid_min_over_points_is_at_most_any_point(seed, num):
    rng = np.random.default_rng(seed)
    marg = rng.normal(0.5, 1.0, size=40)
    grid = BoundGrid.geometric(0.05, 3.0, num) if num > 1 else BoundGrid(rhos=(0.7,))
    res = theorem53_grid_bound(marg, 0.02, 0.03, 0.1, grid, 2.0, 1.0)
    for rho in grid.rhos:
        t = theorem53_bound(float(np.mean(ramp_loss(marg, rho))), 2 * 0.02, 0.03, 40, rho, 0.1, grid_size=grid.size)
        assert res.best.bound <= t.bound + 1e-12
    assert any(res.best.bound == pytest.approx(t.bound) for t in res.evaluated)
    assert res.best.rho in grid.rhos


def test_grid_radii_only_covering_points_count():
    grid = BoundGrid(rhos=(0.5, 1.0), radii_penult=(1.0, 2.0, 4.0), radii_final=(1.0, 3.0))
    res = theorem53_grid_bound(np.ones(10), 0.1, 0.1, 0.1, grid, radius_penult=1.5, radius_final=0.5)
    assert len(res.evaluated) == 2 * 2 * 2
    assert all(t.radius_penult >= 1.5 and t.radius_final >= 0.5 for t in res.evaluated)
    assert res.best.radius_penult == 2.0 and res.best.radius_final == 1.0
    assert all(t.grid_size == 12 for t in res.evaluated)  # every point is paid for, covering or not
    with pytest.raises(ValueError, match="no grid point covers"):
        theorem53_grid_bound(np.ones(10), 0.1, 0.1, 0.1, grid, radius_penult=5.0, radius_final=0.5)


def test_grid_fixed_radii_used_as_given():
    grid = BoundGrid(rhos=(1.0,))
    res = theorem53_grid_bound(np.ones(10), 0.1, 0.2, 0.1, grid, radius_penult=3.0, radius_final=2.0)
    assert res.best.rc_penult == pytest.approx(0.3) and res.best.rc_final == pytest.approx(0.4)
    assert res.best.complexity == pytest.approx(4 * 0.7)


# ------------------------------------------------------------------ MC confidence split (THEORY §5)

def test_mc_split_budget_accounting():
    s = split_confidence(0.1, 0.2, 4)
    assert (s.delta, s.delta_mc, s.delta_per_certificate) == pytest.approx((0.08, 0.02, 0.005))
    assert s.delta + s.delta_mc == pytest.approx(0.1)
    assert s.delta_per_certificate * s.n_certificates == pytest.approx(s.delta_mc)
    assert s.confidence_level == pytest.approx(0.9)
    none = split_confidence(0.1, 0.2, 0)
    assert (none.delta, none.delta_mc, none.delta_per_certificate) == (0.1, 0.0, None)


def test_mc_split_from_parts_spends_delta_mc_only_with_certificates():
    s = confidence_split_from_parts(0.05, 0.01, 8)
    assert s.delta_per_certificate == pytest.approx(0.01 / 8)
    assert s.confidence_level == pytest.approx(1 - 0.05 - 0.01)
    assert s.to_dict()["joint_confidence_level"] == pytest.approx(1 - 0.1 - 0.01)
    assert confidence_split_from_parts(0.05, 0.01, 0).confidence_level == pytest.approx(0.95)


# ------------------------------------------------------------------ fused_model_bounds (THEORY §1, §4, §5)

#: the contract's statements (THEORY §4); the others add Monte Carlo certificates that share delta_mc
CONTRACT = ("theorem53", "corollary54")


def _fused_data(seed=0, counts=(40, 12, 3), d1=5, d2=4):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    n, k = labels.size, len(counts)
    psi1, psi2 = unit_sphere(rng, n, d1), unit_sphere(rng, n, d2)
    u, v = rng.normal(size=(k, d1)), rng.normal(size=(k, d2))
    u = 2.0 * u / np.linalg.norm(u, axis=1, keepdims=True)
    v = 1.0 * v / np.linalg.norm(v, axis=1, keepdims=True)
    scores = psi1 @ u.T + psi2 @ v.T
    return psi1, psi2, scores, labels


def test_fused_sum_is_penult_plus_final():
    psi1, psi2, scores, labels = _fused_data()
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid.geometric(0.1, 2.0, 4), n_draws=200, seed=5)
    rc = rep.views().rademacher
    assert rc.sum.value == pytest.approx(rc.penultimate.value + rc.final.value, rel=1e-12)
    assert rc.sum.upper == pytest.approx(rc.penultimate.upper + rc.final.upper, rel=1e-12)
    assert rep.record("theorem53").terms["rc_penult"] == pytest.approx(rc.penultimate.upper)


def test_fused_auto_uses_exact_for_tiny_classes_and_matches_enumeration():
    psi1, psi2, scores, labels = _fused_data()
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid(rhos=(0.5, 1.0)), n_draws=200, statements=CONTRACT)
    ctx = rep.context
    assert ctx.settings["class_methods"] == {"0": "mc", "1": "exact", "2": "exact"}
    assert ctx.settings["overall_method"] == "mc"
    assert ctx.confidence.n_certificates == 2 + 2
    per_class = rep.views().per_class
    for c in (1, 2):
        pc = per_class[c]
        rows = labels == c
        assert pc.rademacher.penultimate.method == "exact"
        assert pc.rademacher.penultimate.upper == pytest.approx(exact_row_erc(psi1[rows], 2.0, 3), rel=1e-9)
        assert pc.rademacher.final.upper == pytest.approx(exact_row_erc(psi2[rows], 1.0, 3), rel=1e-9)


def test_fused_overall_equals_theorem53_recomputed_by_hand():
    psi1, psi2, scores, labels = _fused_data()
    grid = BoundGrid.geometric(0.2, 2.0, 3)
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=grid, n_draws=0)  # closed form everywhere
    assert rep.context.settings["overall_method"] == "closed" and rep.context.confidence.n_certificates == 0
    up1, up2 = closed_form_bounds(psi1, 2.0, 3, "row")[1], closed_form_bounds(psi2, 1.0, 3, "row")[1]
    marg = margins(scores, labels)
    best = min(theorem53_bound(float(np.mean(ramp_loss(marg, r))), up1, up2, labels.size, r, 0.05,
                               grid_size=3).bound for r in grid.rhos)
    assert rep.record("theorem53").bound == pytest.approx(best)
    assert rep.views().overall.bound == pytest.approx(best)
    assert rep.context.confidence.confidence_level == pytest.approx(0.95)


def test_fused_mc_split_certificates_share_delta_mc():
    psi1, psi2, scores, labels = _fused_data(counts=(30, 25, 24))
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid(rhos=(1.0,)), method="mc", n_draws=100, delta_mc=0.02,
                             statements=CONTRACT)
    conf = rep.context.confidence
    assert conf.n_certificates == 2 + 2 * 3
    assert conf.delta_per_certificate == pytest.approx(0.02 / 8)
    assert rep.context.unit_penult.delta_mc == pytest.approx(0.02 / 8)
    assert all(e.delta_mc == pytest.approx(0.02 / 8) for e in rep.context.class_unit_final)
    assert conf.confidence_level == pytest.approx(1 - 0.05 - 0.02)


def test_fused_records_are_json_and_report_missing_classes():
    psi1, psi2, scores, labels = _fused_data(counts=(30, 5, 2))
    # 4 classes: class 3 has no training sample (scores need 4 columns)
    scores4 = np.concatenate([scores, np.full((scores.shape[0], 1), -5.0)], axis=1)
    rep = fused_model_bounds(psi1, psi2, scores4, labels, num_classes=4, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid.geometric(0.1, 1.0, 3), n_draws=50, class_names=list("abcd"),
                             feature_norm_bound=1.0)
    text = json.dumps([dataclasses.asdict(r) for r in rep.records], allow_nan=False)
    assert json.loads(text)
    views = rep.views()
    assert views.per_class[3].reason == "no training samples" and views.per_class[3].bound is None
    assert views.per_class[0].name == "a"
    assert views.worst_class.bound == pytest.approx(max(r.bound for r in views.per_class if r.bound))
    assert rep.record("corollary54", "worst_class").bound == views.worst_class.bound
    # the tighter proved form (bounded features) is a statement of its own, beside the contract bound
    assert rep.record("theorem53_bounded_features").theory.startswith("THEORY §8")
    assert rep.record("corollary54_bounded_features", "class:0").bound is not None
    assert rep.record("corollary54_bounded_features", "class:3").reason == "no training samples"


def test_theorem53_bounded_features_in_fused_is_tighter_than_closed_form_contract():
    # with closed-form ERCs and unit features both forms have the same complexity term at every grid point,
    # and the expected-Rademacher form has the smaller confidence term, so it is smaller everywhere
    psi1, psi2, scores, labels = _fused_data()
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid.geometric(0.1, 1.0, 3), n_draws=0, feature_norm_bound=1.0)
    contract, tighter = rep.record("theorem53"), rep.record("theorem53_bounded_features")
    assert tighter.bound < contract.bound
    for c in range(3):
        assert rep.record("corollary54_bounded_features", f"class:{c}").bound < \
            rep.record("corollary54", f"class:{c}").bound
    # at the contract's chosen point both forms have the same complexity term
    from scilt_theory.statements.margin import THEOREM53

    for t in THEOREM53.grid_result(rep.context, 0.05).evaluated:
        bf = theorem53_bound_bounded_features(t.train_margin_loss, t.n, t.rho, 0.05, radius_penult=2.0,
                                              radius_final=1.0, num_outputs=3, grid_size=3)
        assert bf.complexity == pytest.approx(t.complexity) and bf.bound < t.bound


def test_fused_linear_heads_use_covering_radii_from_the_grid():
    psi1, psi2, scores, labels = _fused_data()
    grid = BoundGrid(rhos=(0.5, 1.0), radii_penult=(1.0, 2.5, 5.0), radii_final=(0.5, 1.5))
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=grid, n_draws=0)
    terms = rep.record("theorem53").terms
    assert terms["radius_penult"] == 2.5 and terms["radius_final"] == 1.5
    assert terms["grid_size"] == 12
    rc = rep.views().rademacher
    assert rc.penultimate.upper == pytest.approx(2.5 * rc.unit_penultimate.upper)


# ------------------------------------------------------------------ validation: one test per error kind

def test_validation_delta_outside_unit_interval():
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="delta"):
            theorem53_bound(0.1, 0.1, 0.1, n=10, rho=1.0, delta=bad)
    with pytest.raises(ValueError, match="delta"):
        confidence_term(10, 0.0)
    with pytest.raises(ValueError, match="delta"):
        split_confidence(1.0, 0.1, 2)


def test_validation_rho_not_positive():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="rho"):
            theorem53_bound(0.1, 0.1, 0.1, n=10, rho=bad, delta=0.1)
    with pytest.raises(ValueError, match="rhos"):
        BoundGrid(rhos=(0.5, -1.0))
    with pytest.raises(ValueError, match="contraction|rho"):
        contraction_factor(0.0)


def test_validation_empty_class_where_bound_requested():
    with pytest.raises(ValueError, match="n_c = 0"):
        corollary54_class_bound(0.1, 0.1, 0.1, n_c=0, rho=1.0, delta=0.1, num_classes=3)
    with pytest.raises(ValueError, match="n = 0|empty"):
        closed_form_bounds(np.zeros((0, 3)), 1.0)


def test_validation_nan_or_inf_features_and_scores():
    psi1, psi2, scores, labels = _fused_data()
    kw = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, grid=BoundGrid(rhos=(1.0,)), n_draws=0)
    bad = psi1.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="psi_penult contain NaN"):
        fused_model_bounds(bad, psi2, scores, labels, **kw)
    bad_scores = scores.copy()
    bad_scores[1, 1] = np.inf
    with pytest.raises(ValueError, match="scores contain NaN"):
        fused_model_bounds(psi1, psi2, bad_scores, labels, **kw)
    with pytest.raises(ValueError, match="NaN"):
        closed_form_bounds(np.array([[np.inf, 0.0]]), 1.0)


def test_validation_shape_mismatch():
    psi1, psi2, scores, labels = _fused_data()
    kw = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, grid=BoundGrid(rhos=(1.0,)), n_draws=0)
    with pytest.raises(ValueError, match="psi_final has"):
        fused_model_bounds(psi1, psi2[:-1], scores, labels, **kw)
    with pytest.raises(ValueError, match="columns but num_classes"):
        fused_model_bounds(psi1, psi2, scores[:, :2], labels, **kw)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        fused_model_bounds(psi1, psi2, scores, labels[:-1], **kw)
    with pytest.raises(ValueError, match="2-D"):
        closed_form_bounds(np.zeros(4), 1.0)


def test_validation_labels_out_of_range():
    psi1, psi2, scores, labels = _fused_data()
    kw = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, grid=BoundGrid(rhos=(1.0,)), n_draws=0)
    bad = labels.copy()
    bad[0] = 3
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        fused_model_bounds(psi1, psi2, scores, bad, **kw)
    bad[0] = -1
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        fused_model_bounds(psi1, psi2, scores, bad, **kw)


def test_validation_grid_and_settings():
    psi1, psi2, scores, labels = _fused_data()
    kw = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, n_draws=0)
    with pytest.raises(ValueError, match="BoundGrid"):
        fused_model_bounds(psi1, psi2, scores, labels, grid=(0.5, 1.0), **kw)
    with pytest.raises(ValueError, match="no grid point covers"):
        fused_model_bounds(psi1, psi2, scores, labels, grid=BoundGrid(rhos=(1.0,), radii_penult=(1.0,)), **kw)
    with pytest.raises(ValueError, match="delta \\+ delta_mc"):
        fused_model_bounds(psi1, psi2, scores, labels, grid=BoundGrid(rhos=(1.0,)), delta=0.6, delta_mc=0.5, **kw)
    with pytest.raises(ValueError, match="method"):
        fused_model_bounds(psi1, psi2, scores, labels, grid=BoundGrid(rhos=(1.0,)), method="magic", **kw)
    with pytest.raises(ValueError, match="feature_norm_bound"):
        fused_model_bounds(psi1 * 2, psi2, scores, labels, grid=BoundGrid(rhos=(1.0,)), feature_norm_bound=1.0,
                           **kw)
    with pytest.raises(ValueError, match="repeat"):
        BoundGrid(rhos=(1.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        BoundGrid(rhos=())


def test_validation_terms_out_of_range():
    with pytest.raises(ValueError, match="train_margin_loss"):
        theorem53_bound(1.5, 0.1, 0.1, n=10, rho=1.0, delta=0.1)
    with pytest.raises(ValueError, match="rc_penult"):
        theorem53_bound(0.5, -0.1, 0.1, n=10, rho=1.0, delta=0.1)
    with pytest.raises(ValueError, match="n must be"):
        theorem53_bound(0.5, 0.1, 0.1, n=0, rho=1.0, delta=0.1)
    with pytest.raises(ValueError, match="norm"):
        closed_form_bounds(np.ones((2, 2)), 1.0, norm="spectral")
    with pytest.raises(ValueError, match="mc_fraction"):
        split_confidence(0.1, 1.0, 3)
    from scilt_theory.rademacher import LIMITS, select_estimator

    assert (LIMITS.auto_exact_signs, LIMITS.max_exact_signs) == (22, 24)
    assert [select_estimator("auto", n) for n in (22, 23)] == ["exact", "mc"]
    assert select_estimator("auto", 5, n_draws=0) == "closed" and select_estimator("mc", 3) == "mc"


# ------------------------------------------------------------------ class-weighted margin bound (THEORY §8)

@given(st.floats(0, 1), st.floats(0, 2), st.floats(0, 2), st.integers(1, 10**6), st.floats(0.01, 10),
       st.floats(1e-6, 0.99), st.integers(1, 1000))
def test_weighted_margin_bound_with_uniform_weights_is_theorem53(e, r1, r2, n, rho, delta, m):
    a = theorem53_bound(e, r1, r2, n, rho, delta, grid_size=m)
    b = B.weighted_margin_bound(e, r1, r2, 1.0 / n, rho, delta, grid_size=m, num_targets=1)
    assert b.bound == pytest.approx(a.bound, rel=1e-12) and b.confidence == pytest.approx(a.confidence, rel=1e-12)
    assert b.complexity == pytest.approx(a.complexity, rel=1e-12)


def test_weighted_confidence_term_hand_value():
    # balanced over classes of sizes 40, 12, 3: sum w^2 = (1/3)^2 (1/40 + 1/12 + 1/3), T = 4 targets, m = 5
    s2 = (1 / 9) * (1 / 40 + 1 / 12 + 1 / 3)
    assert B.weighted_confidence_term(s2, 0.05, grid_size=5, num_targets=4) == pytest.approx(
        3 * math.sqrt(math.log(2 * 4 * 5 / 0.05) * s2 / 2))
    with pytest.raises(ValueError, match="sum_sq_weights"):
        B.weighted_confidence_term(0.0, 0.05)


def test_weighted_statement_uses_class_weights_and_the_weighted_closed_form():
    psi1, psi2, scores, labels = _fused_data()
    grid = BoundGrid.geometric(0.2, 2.0, 3)
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=grid, n_draws=0, statements=["weighted_margin"],
                             class_groups=["head", "tail", "tail"])
    counts = np.bincount(labels)
    w = 1.0 / (3 * counts[labels])
    r = rep.record("weighted_margin", "balanced")
    assert r.terms["sum_sq_weights"] == pytest.approx(np.sum(w ** 2)) and r.terms["num_targets"] == 3
    assert r.terms["confidence"] == pytest.approx(B.weighted_confidence_term(np.sum(w ** 2), 0.05, 3, 3))
    # closed form of the weighted row class at unit radius: K sqrt(sum_i w_i^2 ||psi_i||^2) (Lemma 5.2(a))
    unit1, unit2 = rep.context.weighted_unit["balanced"]
    assert unit1.upper == pytest.approx(3 * math.sqrt(np.sum(w ** 2 * np.sum(psi1 ** 2, axis=1))), rel=1e-12)
    assert unit2.upper == pytest.approx(3 * math.sqrt(np.sum(w ** 2 * np.sum(psi2 ** 2, axis=1))), rel=1e-12)
    marg = margins(scores, labels)
    by_hand = min(float(np.mean([np.mean(ramp_loss(marg[labels == c], rho)) for c in range(3)]))
                  + 4 / rho * (2.0 * unit1.upper + 1.0 * unit2.upper)
                  + B.weighted_confidence_term(np.sum(w ** 2), 0.05, 3, 3) for rho in grid.rhos)
    assert r.bound == pytest.approx(by_hand, rel=1e-12)
    tail = rep.record("weighted_margin", "group:tail")
    wt = np.where(labels > 0, 1.0 / (2 * counts[labels]), 0.0)
    assert tail.terms["sum_sq_weights"] == pytest.approx(np.sum(wt ** 2)) and tail.terms["classes"] == [1, 2]


@given(st.floats(0, 1), st.integers(1, 10**6), st.floats(0.01, 10), st.floats(1e-6, 0.99), st.integers(1, 1000))
def test_weighted_bounded_features_with_uniform_weights_is_the_bounded_features_theorem53(e, n, rho, delta, m):
    a = theorem53_bound_bounded_features(e, n, rho, delta, radius_penult=2.0, radius_final=1.0, num_outputs=3,
                                         grid_size=m)
    b = B.weighted_margin_bound_bounded_features(e, 1.0 / n, rho, delta, radius_penult=2.0, radius_final=1.0,
                                                 num_outputs=3, grid_size=m)
    assert b.bound == pytest.approx(a.bound, rel=1e-12) and b.confidence == pytest.approx(a.confidence, rel=1e-12)


def test_weighted_bounded_features_hand_value_and_statement():
    s2 = (1 / 4) * (1 / 40 + 1 / 12)
    t = B.weighted_margin_bound_bounded_features(0.1, s2, 0.5, 0.05, radius_penult=2.0, radius_final=1.0,
                                                 num_outputs=3, grid_size=5, num_targets=4)
    assert t.complexity == pytest.approx(4 / 0.5 * (2.0 + 1.0) * 3 * math.sqrt(s2))
    assert t.confidence == pytest.approx(math.sqrt(math.log(4 * 5 / 0.05) * s2 / 2))
    psi1, psi2, scores, labels = _fused_data()
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2.0, radius_final=1.0,
                             grid=BoundGrid.geometric(0.2, 2.0, 3), n_draws=0, feature_norm_bound=1.0,
                             statements=["weighted_margin_bounded_features"])
    r = rep.record("weighted_margin_bounded_features", "balanced")
    w = 1.0 / (3 * np.bincount(labels)[labels])
    assert r.terms["sum_sq_weights"] == pytest.approx(np.sum(w ** 2)) and r.bounds_quantity == "balanced error"
    assert not rep.context.weighted_unit  # the expected form needs no weighted complexity of the sample
