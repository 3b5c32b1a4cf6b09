"""Tighter uniform statements (THEORY §8; proofs/data_dependent_radii.md, proofs/theorem_5_3_tighter.md A) and the
minimum over statements with its δ split, each against a computation by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau
from synthetic import cosine_model as _cosine_model

from scilt_theory.bounds import confidence_term
from scilt_theory.grid import BoundGrid
from scilt_theory.losses import margins, ramp_loss
from scilt_theory.rademacher import closed_form_bounds, rademacher_coupled_scilt
from scilt_theory.schema import Comparison
from scilt_theory.statements import STATEMENTS, fused_model_bounds
from scilt_theory.statements.radii import RADII_RATIO, data_radii_grid, trained_radii
from scilt_theory.statements.views import rank_correlations

S = 2.0  # cosine scale: class radii (2s, s)


def _bounds(statements, **kw):
    psi1, psi2, scores, labels, heads = _cosine_model(**{k: kw.pop(k) for k in ("alpha", "counts") if k in kw})
    kw.setdefault("grid", BoundGrid.geometric(0.2, 4 * S, 4))
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2 * S, radius_final=S,
                             n_draws=0, head_weights=heads, statements=statements, **kw)
    return rep, (psi1, psi2, scores, labels, heads)


def test_data_radii_grid_is_fixed_by_the_class_radii_and_covers_the_trained_norms():
    rep, (psi1, psi2, scores, labels, (u, v)) = _bounds(["theorem53_data_radii"])
    ctx = rep.context
    grid = data_radii_grid(ctx)
    # 13 radii per axis from B/8 to B in steps of 2^(1/4); |G| = |ρ| · 13 · 13
    assert grid.radii_penult[-1] == pytest.approx(2 * S) and grid.radii_penult[0] == pytest.approx(2 * S / 8)
    assert np.allclose(np.diff(np.log(grid.radii_final)), math.log(RADII_RATIO))
    assert grid.size == 4 * 13 * 13
    b1, b2 = trained_radii(ctx)
    assert b1 == pytest.approx(np.linalg.norm(u, axis=1).max()) and b2 == pytest.approx(S * 0.6)
    r = rep.record("theorem53_data_radii")
    t = r.terms
    smallest = grid.radii_penult[0]
    assert t["radius_penult"] >= b1 and (t["radius_penult"] / RADII_RATIO < b1 or t["radius_penult"] == smallest)
    # by hand: min over covering points of loss + (4/ρ)(B₁ r₁ + B₂ r₂) + 3 sqrt(ln(2|G|/δ)/(2n))
    r1 = closed_form_bounds(psi1, 1.0, 3, "row")[1]
    r2 = closed_form_bounds(psi2, 1.0, 3, "row")[1]
    marg = margins(scores, labels)
    n = labels.size
    by_hand = min(float(np.mean(ramp_loss(marg, rho))) + 4 / rho * (c1 * r1 + c2 * r2)
                  + confidence_term(n, 0.05, grid_size=grid.size)
                  for rho in grid.rhos for c1 in grid.radii_penult if c1 >= b1 for c2 in grid.radii_final if c2 >= b2)
    assert r.bound == pytest.approx(by_hand, rel=1e-12)


def test_data_radii_pay_for_the_grid_and_win_when_the_heads_are_small():
    # α = 0.9: V's rows have norm 0.1 s, U's ≤ 1.9 s: the complexity term shrinks more than ln m grows
    rep, _ = _bounds(["theorem53", "theorem53_data_radii"], alpha=0.9, counts=(400, 120, 30))
    assert rep.record("theorem53_data_radii").bound < rep.record("theorem53").bound
    assert rep.record("theorem53_data_radii").terms["confidence"] > rep.record("theorem53").terms["confidence"]


def test_coupled_statement_uses_the_coupled_complexity_of_the_bound_sample_itself():
    counts = (4, 1)  # n·K = 5·2: exact enumeration of the coupled class
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], counts)
    psi1 = rng.normal(size=(5, 3))
    psi1 /= np.linalg.norm(psi1, axis=1, keepdims=True)
    psi2 = np.roll(psi1, 1, axis=1)
    scores = rng.normal(size=(5, 2))
    grid = BoundGrid.geometric(0.5, 4 * S, 3)
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=2, radius_penult=2 * S, radius_final=S,
                             grid=grid, n_draws=50, coupled_scale=S, statements=["theorem53", "theorem53_coupled"])
    ctx = rep.context
    exact = rademacher_coupled_scilt(psi1, psi2, 2, S, method="exact")
    assert ctx.coupled_unit["overall"].method == "exact" and ctx.coupled_unit["overall"].n == 5  # the whole sample
    assert ctx.coupled_unit["overall"].upper == pytest.approx(exact.value, rel=1e-12)
    marg = margins(scores, labels)
    by_hand = min(float(np.mean(ramp_loss(marg, rho))) + 4 / rho * exact.value + confidence_term(5, 0.05, grid.size)
                  for rho in grid.rhos)
    assert rep.record("theorem53_coupled").bound == pytest.approx(by_hand, rel=1e-12)
    # the coupled class is a subset of F_{N-1}(2s) + F_N(s): never above the contract with exact complexities
    assert rep.record("theorem53_coupled").bound <= rep.record("theorem53").bound + 1e-12
    # its floor uses the coupled class's largest margin 4s (|h_c| <= 2s), not the sum's 6s
    assert rep.record("theorem53_coupled").terms["radius_penult"] == S


def test_tightest_uniform_is_the_minimum_of_its_members_each_at_delta_over_j():
    rep, _ = _bounds(None, feature_norm_bound=1.0)
    ctx = rep.context
    tight = rep.record("tightest_uniform")
    members = [STATEMENTS[m] for m in tight.terms["members"]]
    assert all(m.family == "uniform" and m.applies(ctx) for m in members) and len(members) >= 8
    share = 0.05 / len(members)
    assert tight.terms["delta_each"] == pytest.approx(share) and tight.delta == 0.05
    for target in ("overall", "balanced", "class:0", "group:few", "worst_class"):
        values = [(r.bound, r.name) for m in members for r in m.evaluate(ctx, share)
                  if r.target == target and r.bound is not None]
        best = min(values)
        record = rep.record("tightest_uniform", target)
        assert record.bound == pytest.approx(best[0], rel=1e-12) and record.terms["attained_by"] == best[1]
        # each member evaluated at δ/J is at least its value at δ: the split is paid, not assumed away
        assert all(v >= rep.record(name, target).bound - 1e-12 for v, name in values)


def test_rank_correlation_is_kendalls_tau_of_class_bounds_and_class_errors():
    rep, _ = _bounds(["corollary54"])
    errors = [0.1, 0.5, 0.3]
    records = [r if not r.target.startswith("class:") else
               r.__class__(**{**r.__dict__, "compared_with": Comparison("class error", "test",
                                                                        errors[int(r.target[6:])], True)})
               for r in rep.records]
    (rc,) = rank_correlations(records)
    bounds = [rep.record("corollary54", f"class:{c}").bound for c in range(3)]
    want = kendalltau(bounds, errors)
    assert rc.statement == "corollary54" and rc.n == 3
    assert rc.tau == pytest.approx(want.statistic) and rc.p_value == pytest.approx(want.pvalue)
    flat = [r.__class__(**{**r.__dict__, "compared_with": Comparison("class error", "test", 0.2, True)})
            for r in rep.records]
    assert rank_correlations(flat)[0].tau is None  # constant errors: no ranking to speak of
