"""Floors and n_for_nonvacuous (THEORY §8, proofs/floors.md) against hand-computed cases.

The floor of a uniform statement is its value for a classifier whose every margin is the largest one possible;
such a classifier is built here, so the floor is checked against the statement's own bound, and against the formula
written out by hand. The information floor of a certificate is the Clopper–Pearson limit for zero errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scilt_theory.bounds import BoundTerms, confidence_term
from scilt_theory.grid import BoundGrid
from scilt_theory.rademacher import closed_form_bounds
from scilt_theory.statements import fused_model_bounds
from scilt_theory.statements.certificates import CertificateSample
from scilt_theory.statements.margin import n_for_nonvacuous

B1, B2, DELTA = 2.0, 1.0, 0.05


def _max_margin_sample(n_per_class=(30, 10)):
    """Two classes, ψ₁ = ψ₂ = ±e₁: the scorer u_c = ±B₁e₁, v_c = ±B₂e₁ has every margin = 2(B₁ + B₂) = M_max."""
    y = np.repeat([0, 1], n_per_class)
    psi = np.zeros((y.size, 3))
    psi[:, 0] = np.where(y == 0, 1.0, -1.0)
    u = np.array([[B1, 0, 0], [-B1, 0, 0]])
    v = np.array([[B2, 0, 0], [-B2, 0, 0]])
    return psi, psi.copy(), psi @ u.T + psi @ v.T, y


def test_the_floor_is_the_bound_of_a_classifier_with_every_margin_maximal():
    psi1, psi2, scores, y = _max_margin_sample()
    grid = BoundGrid.geometric(0.5, 20.0, 6)  # ρ beyond M_max = 6: the margin loss floor 1 − 6/ρ > 0 there
    rep = fused_model_bounds(psi1, psi2, scores, y, num_classes=2, radius_penult=B1, radius_final=B2, grid=grid,
                             n_draws=0, delta=DELTA, statements=["theorem53", "corollary54", "weighted_margin"])
    for r in rep.records:
        if r.bound is not None and r.floor is not None and r.target in ("overall", "class:0", "class:1",
                                                                          "balanced"):
            assert r.floor == pytest.approx(r.bound, rel=1e-12), (r.name, r.target)
    # and by hand, for Theorem 5.3: min over ρ of max(0, 1 − M/ρ) + (4/ρ)(B₁ r₁ + B₂ r₂) + 3 sqrt(ln(2m/δ)/(2n))
    n = y.size
    r1 = closed_form_bounds(psi1, 1.0, 2, "row")[1]
    r2 = closed_form_bounds(psi2, 1.0, 2, "row")[1]
    m_max = 2 * (B1 + B2)
    by_hand = min(max(0.0, 1 - m_max / rho) + 4 / rho * (B1 * r1 + B2 * r2) + 3 * math.sqrt(
        math.log(2 * grid.size / DELTA) / (2 * n)) for rho in grid.rhos)
    assert rep.record("theorem53").floor == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(min(max(0.0, 1 - m_max / rho) + 4 / rho * (B1 * r1 + B2 * r2)
                                        for rho in grid.rhos) + confidence_term(n, DELTA, grid.size))


def test_the_floor_is_below_every_bound_and_flags_vacuity_by_construction():
    rng = np.random.default_rng(3)
    psi1 = rng.normal(size=(60, 4))
    psi1 /= np.linalg.norm(psi1, axis=1, keepdims=True)
    psi2 = np.roll(psi1, 1, axis=1)
    y = np.repeat([0, 1, 2], [40, 15, 5])
    scores = rng.normal(size=(60, 3))
    rep = fused_model_bounds(psi1, psi2, scores, y, num_classes=3, radius_penult=B1, radius_final=B2,
                             grid=BoundGrid.geometric(0.1, 12.0, 8), n_draws=0, delta=DELTA)
    checked = 0
    for r in rep.records:
        if r.bound is None or r.floor is None:
            continue
        assert r.floor <= r.bound + 1e-12, (r.name, r.target)
        assert r.vacuous_by_construction == (r.floor >= 1.0)
        checked += 1
    assert checked > 10
    # the tail class (n_c = 5) is vacuous whatever the classifier: its confidence term alone exceeds 1
    assert rep.record("corollary54", "class:2").vacuous_by_construction


def test_the_information_floor_of_a_certificate_is_the_zero_error_limit():
    psi1, psi2, scores, y = _max_margin_sample()
    sample = CertificateSample("hold-out", errors=(0, 3), counts=(12, 4), same_distribution=True, classifier="t")
    rep = fused_model_bounds(psi1, psi2, scores, y, num_classes=2, radius_penult=B1, radius_final=B2,
                             grid=BoundGrid(rhos=(1.0,)), n_draws=0, certificate_samples={"hold-out": sample},
                             statements=["holdout_certificate"])
    d_class = DELTA / 2 / 2
    assert rep.record("holdout_certificate", "class:0").floor == pytest.approx(1 - d_class ** (1 / 12))
    assert rep.record("holdout_certificate", "class:1").floor == pytest.approx(1 - d_class ** (1 / 4))
    # zero errors: the certificate equals its floor
    assert rep.record("holdout_certificate", "class:0").bound == pytest.approx(1 - d_class ** (1 / 12))


def _terms(loss: float, comp: float, conf: float) -> BoundTerms:
    return BoundTerms(train_margin_loss=loss, complexity=comp, confidence=conf, bound=loss + comp + conf,
                      vacuous=loss + comp + conf > 1, rho=1.0, delta=DELTA, n=100)


def test_n_for_nonvacuous_solves_loss_plus_terms_over_sqrt_t_equal_one():
    # one grid point: L + A/sqrt(t) = 1  =>  t = (A / (1 - L))^2
    n = 100
    curve = [_terms(0.2, 1.0, 0.6)]
    assert n_for_nonvacuous([curve], n, max) == pytest.approx(n * (1.6 / 0.8) ** 2, rel=1e-9)
    # several points: the smallest n at which some point reaches 1
    curve = [_terms(0.2, 1.0, 0.6), _terms(0.5, 0.3, 0.2), _terms(0.95, 0.01, 0.01)]
    want = min(n * (a / (1 - loss)) ** 2 for loss, a in ((0.2, 1.6), (0.5, 0.5), (0.95, 0.02)))
    assert n_for_nonvacuous([curve], n, max) == pytest.approx(want, rel=1e-9)
    # margin losses >= 1 at every point: never
    assert n_for_nonvacuous([[_terms(1.0, 0.5, 0.5)]], n, max) is None
    # an aggregate (mean of two classes' bounds): solved numerically, checked by plugging it back in
    curves = [[_terms(0.1, 2.0, 1.0)], [_terms(0.3, 0.5, 0.5)]]
    t = n_for_nonvacuous(curves, n, lambda v: float(np.mean(v))) / n
    assert np.mean([0.1 + 3.0 / math.sqrt(t), 0.3 + 1.0 / math.sqrt(t)]) == pytest.approx(1.0, rel=1e-9)
