"""The unit complexities are computed on request and cached, over a δ_mc plan fixed before any estimate runs
(statements/complexities.py; THEORY §5)."""

from __future__ import annotations

import numpy as np
from synthetic import class_features

from scilt_theory.grid import BoundGrid
from scilt_theory.statements import Estimation, Hypothesis, Sample, build_context, fused_model_bounds

K = 3


def _sample(seed=0, counts=(40, 12, 3), d=4):
    rng = np.random.default_rng(seed)
    labels, psi1, psi2 = class_features(rng, counts, d, K)
    u, v = rng.normal(size=(K, d)), rng.normal(size=(K, d))
    return psi1, psi2, psi1 @ u.T + psi2 @ v.T, labels


KW = dict(num_classes=K, radius_penult=4.0, radius_final=2.0, grid=BoundGrid(rhos=(0.5, 1.0)), method="mc",
          n_draws=64)


def test_a_complexity_no_statement_reads_is_never_computed_but_keeps_its_certificate_share():
    psi1, psi2, scores, labels = _sample()
    only_theorem = fused_model_bounds(psi1, psi2, scores, labels, statements=["theorem53"], **KW)
    assert only_theorem.context.complexities.computed == ("overall",)
    contract = fused_model_bounds(psi1, psi2, scores, labels, statements=["theorem53", "corollary54"], **KW)
    assert set(contract.context.complexities.computed) == {"overall", "class:0", "class:1", "class:2"}
    # the plan, not the reads, fixes δ_mc per certificate: the same selection of needs gives the same split
    assert only_theorem.context.confidence == contract.context.confidence
    assert only_theorem.context.confidence.n_certificates == 2 + 2 * K
    assert only_theorem.record("theorem53").bound == contract.record("theorem53").bound


def test_the_order_of_the_reads_does_not_change_a_value():
    psi1, psi2, scores, labels = _sample(1)
    typed = (Sample(psi1, psi2, scores, labels, K), Hypothesis(4.0, 2.0),
             Estimation(BoundGrid(rhos=(0.5, 1.0)), method="mc", n_draws=64))
    a = build_context(*typed, needs=frozenset({"weighted"}))
    b = build_context(*typed, needs=frozenset({"weighted"}))
    first_a = (a.unit_penult, a.class_unit_final[2], a.weighted_unit["balanced"])
    first_b = (b.weighted_unit["balanced"], b.class_unit_final[2], b.unit_penult)[::-1]
    assert first_a == first_b
    assert a.complexities.computed == ("overall", "class:2", "weighted:balanced")
    assert a.unit_penult is a.unit_penult  # cached: one estimate per quantity
    assert len(a.class_unit_penult) == K and list(a.weighted_unit) == list(b.weighted_unit)
