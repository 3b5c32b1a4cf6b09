"""The class-wise contraction (THEORY §8; proofs/classwise_contraction.md): the lemma against exact enumeration, the
case where it is attained, the row-class identities, every statement against a computation by hand, and the
fusion-weight radii grid."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tighter import S, _cosine_model  # unit features, unit-row SciLT heads U = s(αŴ1 + Ŵ2), V = s(1 − α)Ŵ1

from scilt_theory import bounds
from scilt_theory.bounds import classwise_geometry, confidence_term
from scilt_theory.grid import BoundGrid
from scilt_theory.losses import margins, ramp_loss
from scilt_theory.statements import fused_model_bounds
from scilt_theory.statements.radii import FUSION_INTERVALS, data_radii_grid, fusion_radii_grid, trained_radii

REL = 1e-12


# ---------------------------------------------------------------------------------------- independent oracles

def _signs(n: int) -> np.ndarray:
    return np.array(list(itertools.product((-1.0, 1.0), repeat=n)))


def _erc_of_rows(values: np.ndarray) -> float:
    """E_σ max_p Σ_i σ_i values[p, i] by enumeration (no 1/n: the weights carry the normalisation)."""
    return float(np.mean(np.max(_signs(values.shape[1]) @ values.T, axis=1))) if values.shape[1] else 0.0


def _margin(v: np.ndarray, y: int) -> float:
    return float(v[y] - np.max(np.delete(v, y)))


def _ramp(t: float, rho: float) -> float:
    return 1.0 if t <= 0 else (1.0 - t / rho if t < rho else 0.0)


def _lemma_sides(values: np.ndarray, y: np.ndarray, w: np.ndarray, rho: float) -> tuple[float, float]:
    """(R̂ʷ(Φ_ρ∘M∘F), Σ_c [R̂ʷ_{S_c}(F_c) + R̂ʷ_{S∖S_c}(F_c)]) of a finite class values (P, n, K)."""
    p, n, k = values.shape
    loss = np.array([[w[i] * _ramp(_margin(values[q, i], int(y[i])), rho) for i in range(n)] for q in range(p)])
    bracket = 0.0
    for c in range(k):
        own, other = y == c, y != c
        bracket += _erc_of_rows(values[:, own, c] * w[own]) + _erc_of_rows(values[:, other, c] * w[other])
    return _erc_of_rows(loss), bracket


# ------------------------------------------------------------------------------------------------- the lemma

@settings(max_examples=60)
@given(seed=st.integers(0, 10**6), coupled=st.booleans())
def test_lemma_holds_by_enumeration_on_random_finite_classes(seed, coupled):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(2, 8)), int(rng.integers(2, 5))
    y = rng.integers(0, k, size=n)
    w = rng.uniform(0.0, 1.0, size=n) * (rng.uniform(size=n) < 0.9)
    rho = float(rng.uniform(0.2, 3.0))
    if coupled:  # any finite class: P score tables
        values = rng.normal(size=(int(rng.integers(2, 7)), n, k))
    else:        # rows chosen independently (the product structure of the row-norm class)
        rows = [rng.normal(size=(int(rng.integers(1, 4)), n)) for _ in range(k)]
        values = np.array([np.stack(choice, axis=1) for choice in itertools.product(*rows)])
    lhs, bracket = _lemma_sides(values, y, w, rho)
    assert lhs <= bounds.classwise_contraction_factor(rho) * bracket * (1 + REL) + 1e-15


def _one_class_ramp_case(rho: float, seed: int) -> tuple[float, float]:
    """A one-class sample (K = 2, all labels 0) and a product class whose margins stay inside (0, ρ): Φ_ρ is linear
    on every margin, the label row and the competitor row are free independently, so the lemma is an equality."""
    rng = np.random.default_rng(seed)
    n = 5
    w = rng.uniform(0.5, 1.5, size=n)
    row0 = rho / 2 + rng.uniform(-rho / 5, rho / 5, size=(3, n))
    row1 = rng.uniform(-rho / 5, rho / 5, size=(4, n))
    values = np.array([np.stack([a, b], axis=1) for a in row0 for b in row1])
    lhs, bracket = _lemma_sides(values, np.zeros(n, dtype=int), w, rho)
    return lhs, bracket


def test_lemma_is_attained_on_one_class():
    # R̂ʷ(Φ∘M∘F) = (1/ρ)·bracket exactly: any factor below 1/ρ (e.g. 1/(2ρ)) fails by 2x
    for rho, seed in [(1.0, 0), (0.37, 1), (2.5, 2)]:
        lhs, bracket = _one_class_ramp_case(rho, seed)
        assert lhs == pytest.approx(bracket / rho, rel=1e-12), "the case is not the analytic one"
        factor = bounds.classwise_contraction_factor(rho)
        assert lhs <= factor * bracket * (1 + 1e-9), (
            f"the class-wise contraction fails on its equality case: R̂ = {lhs:.6g} > factor·bracket = "
            f"{factor:.6g}·{bracket:.6g} (ratio {lhs / (factor * bracket):.4f})")


def test_classwise_factor_is_one_over_rho_and_half_of_lemma_52b():
    for rho in (0.1, 1.0, 7.3):
        assert bounds.classwise_contraction_factor(rho) == pytest.approx(1.0 / rho, rel=REL)
        assert 2 * bounds.classwise_contraction_factor(rho) == pytest.approx(bounds.contraction_factor(rho), rel=REL)
    with pytest.raises(ValueError):
        bounds.classwise_contraction_factor(0.0)


# ------------------------------------------------------------------------------- the row class and its parts

def _bounds(statements, model=None, **kw):
    psi1, psi2, scores, labels, heads = model or _cosine_model()
    kw.setdefault("grid", BoundGrid.geometric(0.2, 4 * S, 4))
    kw.setdefault("n_draws", 0)
    rep = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2 * S, radius_final=S,
                             head_weights=heads, statements=statements, **kw)
    return rep, (psi1, psi2, scores, labels, heads)


def _norm_erc(psi: np.ndarray, w: np.ndarray) -> float:
    """E_σ ‖Σ_i σ_i w_i ψ_i‖ by enumeration."""
    return float(np.mean(np.linalg.norm(_signs(len(w)) @ (w[:, None] * psi), axis=1))) if len(w) else 0.0


def test_row_class_label_and_competitor_parts_by_enumeration():
    # n·K small enough for exact enumeration: the context's per-class units are exact, and its label parts must be
    # Σ_c E‖Σ_{S_c} σ w ψ‖ (w constant on each class), computed here by enumeration
    model = _cosine_model(seed=3, counts=(5, 3, 2), d=3)
    psi1, psi2, _, y, _ = model
    rep, _ = _bounds(["theorem53_classwise"], model=model, n_draws=10, method="exact")
    ctx = rep.context
    for w in (np.full(y.size, 1.0 / y.size), np.where(y == 1, 0.5 / 3, 0.0) + np.where(y == 2, 0.5 / 2, 0.0)):
        l1, l2 = ctx.classwise_label_unit(w)
        by_hand = [sum(_norm_erc(psi[y == c], w[y == c]) for c in range(3)) for psi in (psi1, psi2)]
        assert (l1, l2) == pytest.approx(by_hand, rel=1e-10)
    # the competitor part of every row is at most the whole-sample term: Σ_c e(S∖S_c) <= K e(S) = R̂ᵛ_S(W_row(1))
    w = np.full(y.size, 1.0 / y.size)
    for psi, unit in ((psi1, ctx.unit_penult), (psi2, ctx.unit_final)):
        competitors = sum(_norm_erc(psi[y != c], w[y != c]) for c in range(3))
        assert competitors <= unit.upper * (1 + 1e-10)
        assert unit.upper == pytest.approx(3 * _norm_erc(psi, w), rel=1e-10)
    with pytest.raises(ValueError, match="constant on each class"):
        ctx.classwise_label_unit(np.linspace(0.1, 1.0, y.size))


def test_classwise_geometry_cases_and_refusals():
    counts = np.array([40, 12, 3])
    n = counts.sum()
    a = counts / n ** 2  # w_i = 1/n
    assert classwise_geometry(a) == pytest.approx(np.sum(np.sqrt(counts) + np.sqrt(n - counts)) / n, rel=REL)
    one = np.eye(3)[1] / 12.0  # S_1 with w_i = 1/12
    assert classwise_geometry(one) == pytest.approx(3 / math.sqrt(12), rel=REL)
    for bad in ([1.0], [0.0, 0.0], [0.1, -0.1]):
        with pytest.raises(ValueError):
            classwise_geometry(bad)


@settings(max_examples=80)
@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=12).filter(lambda a: sum(a) > 1e-6))
def test_classwise_geometry_is_at_most_lemma_52b_value(a):
    # each summand √a_c + √(A − a_c) <= 2√A: never above the vector contraction's 2·K·√A (proofs, bounded features)
    assert classwise_geometry(a) <= 2 * len(a) * math.sqrt(sum(a)) * (1 + 1e-12)


# --------------------------------------------------------------------------------------------- the statements

def test_theorem53_classwise_by_hand():
    rep, (psi1, psi2, scores, y, _) = _bounds(["theorem53", "theorem53_classwise"])
    grid = BoundGrid.geometric(0.2, 4 * S, 4)
    n, k = y.size, 3
    marg = margins(scores, y)
    # closed-form units (n_draws = 0): r_j = K √(Σ‖ψ‖²)/n, r_j^c = K √(Σ_{S_c}‖ψ‖²)/n_c;
    # label parts l_j = Σ_c √(Σ_{S_c}‖ψ‖²)/n
    r = [k * math.sqrt(np.sum(p ** 2)) / n for p in (psi1, psi2)]
    lab = [sum(math.sqrt(np.sum(p[y == c] ** 2)) for c in range(k)) / n for p in (psi1, psi2)]
    by_hand = min(float(np.mean(ramp_loss(marg, rho))) + 2 / rho * (2 * S * (r[0] + lab[0]) + S * (r[1] + lab[1]))
                  + confidence_term(n, 0.05, grid_size=grid.size) for rho in grid.rhos)
    record = rep.record("theorem53_classwise")
    assert record.bound == pytest.approx(by_hand, rel=1e-12)
    assert record.bound <= rep.record("theorem53").bound
    assert record.terms["label_penult"] == pytest.approx(2 * S * lab[0], rel=1e-12)


def test_corollary54_classwise_halves_every_class_complexity():
    grid = BoundGrid(rhos=(1.5,))  # one ρ: both statements use the same point
    rep, (_, _, _, y, _) = _bounds(["corollary54", "corollary54_classwise"], grid=grid)
    for c in range(3):
        vec, cw = rep.record("corollary54", f"class:{c}"), rep.record("corollary54_classwise", f"class:{c}")
        assert cw.terms["complexity"] == pytest.approx(vec.terms["complexity"] / 2, rel=1e-12)
        assert cw.terms["confidence"] == pytest.approx(vec.terms["confidence"], rel=1e-12)
        assert cw.terms["train_margin_loss"] == pytest.approx(vec.terms["train_margin_loss"], rel=1e-12)


def test_weighted_margin_classwise_by_hand():
    rep, (psi1, psi2, scores, y, _) = _bounds(["weighted_margin", "weighted_margin_classwise"])
    ctx = rep.context
    grid = BoundGrid.geometric(0.2, 4 * S, 4)
    targets = ctx.weighted_targets()
    marg = margins(scores, y)
    for target, w in targets.items():
        rows = w > 0
        rw = [3 * math.sqrt(np.sum((w[rows, None] * p[rows]) ** 2)) for p in (psi1, psi2)]  # closed-form 𝔯ʷ
        lab = [sum(w[y == c][0] * math.sqrt(np.sum(p[y == c] ** 2)) for c in range(3) if w[y == c].sum() > 0)
               for p in (psi1, psi2)]
        s2 = float(np.sum(w ** 2))
        by_hand = min(min(1.0, float(np.sum(w * ramp_loss(marg, rho))))
                      + 2 / rho * (2 * S * (rw[0] + lab[0]) + S * (rw[1] + lab[1]))
                      + bounds.weighted_confidence_term(s2, 0.05, grid.size, len(targets)) for rho in grid.rhos)
        record = rep.record("weighted_margin_classwise", target)
        assert record.bound == pytest.approx(by_hand, rel=1e-12), target
        assert record.bound <= rep.record("weighted_margin", target).bound


def test_bounded_data_radii_classwise_forms_by_hand():
    stmts = ["theorem53_classwise_bounded_data_radii", "corollary54_classwise_bounded_data_radii",
             "weighted_margin_classwise_bounded_data_radii", "theorem53_bounded_features_data_radii",
             "corollary54_bounded_features_data_radii", "weighted_margin_bounded_features_data_radii"]
    rep, (_, _, scores, y, _) = _bounds(stmts, feature_norm_bound=1.0)
    ctx = rep.context
    grid = data_radii_grid(ctx)
    b1, b2 = trained_radii(ctx)
    cover = [(p1, p2) for p1 in grid.radii_penult if p1 >= b1 for p2 in grid.radii_final if p2 >= b2]
    marg = margins(scores, y)
    n, k, counts = y.size, 3, np.bincount(y, minlength=3)
    geo = float(np.sum(np.sqrt(counts) + np.sqrt(n - counts))) / n
    by_hand = min(float(np.mean(ramp_loss(marg, rho))) + 2 / rho * (p1 + p2) * geo
                  + math.sqrt(math.log(grid.size / 0.05) / (2 * n)) for rho in grid.rhos for p1, p2 in cover)
    assert rep.record("theorem53_classwise_bounded_data_radii").bound == pytest.approx(by_hand, rel=1e-12)
    for c in range(k):
        nc = int(counts[c])
        mc = marg[y == c]
        want = min(float(np.mean(ramp_loss(mc, rho))) + 2 / rho * (p1 + p2) * k / math.sqrt(nc)
                   + math.sqrt(math.log(k * grid.size / 0.05) / (2 * nc)) for rho in grid.rhos for p1, p2 in cover)
        got = rep.record("corollary54_classwise_bounded_data_radii", f"class:{c}").bound
        assert got == pytest.approx(want, rel=1e-12)
    for target, w in ctx.weighted_targets().items():
        a = np.bincount(y, weights=w ** 2, minlength=k)
        want = min(min(1.0, float(np.sum(w * ramp_loss(marg, rho)))) + 2 / rho * (p1 + p2) * classwise_geometry(a)
                   + math.sqrt(math.log(len(ctx.weighted_targets()) * grid.size / 0.05) * a.sum() / 2)
                   for rho in grid.rhos for p1, p2 in cover)
        got = rep.record("weighted_margin_classwise_bounded_data_radii", target).bound
        assert got == pytest.approx(want, rel=1e-12)
    # never above the Lemma 5.2(b) forms on the same grid (same confidence, complexity <=)
    for name in ("theorem53", "corollary54", "weighted_margin"):
        mine = {r.target: r.bound for r in rep.records
                if r.name == f"{name}_classwise_bounded_data_radii" and r.bound is not None}
        theirs = {r.target: r.bound for r in rep.records
                  if r.name == f"{name}_bounded_features_data_radii" and r.bound is not None}
        assert mine.keys() == theirs.keys() and all(mine[t] <= theirs[t] + 1e-12 for t in mine)


def test_classwise_statements_refuse_the_frobenius_norm():
    rep, _ = _bounds(None, norm="frobenius", feature_norm_bound=1.0)
    assert not any("classwise" in r.name for r in rep.records)
    assert rep.record("theorem53").bound is not None


# ----------------------------------------------------------------------------------------- the fusion grid

def test_fusion_grid_pairs_radii_sum_and_size():
    rep, _ = _bounds(["theorem53"], coupled_scale=S)
    grid = fusion_radii_grid(rep.context)
    assert len(grid.radii_pairs) == FUSION_INTERVALS and grid.size == 4 * FUSION_INTERVALS
    assert all(b1 + b2 == pytest.approx(S * (2 + 1 / FUSION_INTERVALS), rel=1e-12) for b1, b2 in grid.radii_pairs)
    assert grid.radii_pairs[0] == pytest.approx((S * 1.01, S))
    assert grid.radii_pairs[-1] == pytest.approx((2 * S, S / 100))
    with pytest.raises(ValueError):
        BoundGrid(rhos=(1.0,), radii_penult=(1.0,), radii_pairs=((1.0, 1.0),))


@settings(max_examples=40)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_fusion_grid_covers_every_scilt_scorer(alpha, seed):
    # ‖u_c‖ <= s(1 + α) and ‖v_c‖ = s(1 − α): the pair of the interval holding α covers the trained norms
    rng = np.random.default_rng(seed)
    w1, w2 = (w / np.linalg.norm(w, axis=1, keepdims=True) for w in (rng.normal(size=(3, 5)), rng.normal(size=(3, 5))))
    u, v = S * (alpha * w1 + w2), S * (1 - alpha) * w1
    b1, b2 = float(np.linalg.norm(u, axis=1).max()), float(np.linalg.norm(v, axis=1).max())
    k = min(int(alpha * FUSION_INTERVALS), FUSION_INTERVALS - 1)
    p1, p2 = S * (1 + (k + 1) / FUSION_INTERVALS), S * (1 - k / FUSION_INTERVALS)
    assert b1 <= p1 * (1 + 1e-12) and b2 <= p2 * (1 + 1e-12)


def test_fusion_radii_statement_by_hand_and_only_for_the_scilt_class():
    name = "theorem53_classwise_bounded_fusion_radii"
    rep, (_, _, scores, y, _) = _bounds([name], feature_norm_bound=1.0, coupled_scale=S)
    ctx = rep.context
    grid = fusion_radii_grid(ctx)
    b1, b2 = trained_radii(ctx)
    cover = [(p1, p2) for p1, p2 in grid.radii_pairs if p1 >= b1 and p2 >= b2]
    assert cover
    marg = margins(scores, y)
    n, counts = y.size, np.bincount(y, minlength=3)
    geo = float(np.sum(np.sqrt(counts) + np.sqrt(n - counts))) / n
    by_hand = min(float(np.mean(ramp_loss(marg, rho))) + 2 / rho * (p1 + p2) * geo
                  + math.sqrt(math.log(grid.size / 0.05) / (2 * n)) for rho in grid.rhos for p1, p2 in cover)
    assert rep.record(name).bound == pytest.approx(by_hand, rel=1e-12)
    without, _ = _bounds([name], feature_norm_bound=1.0)  # no coupled_scale: not the SciLT form
    assert not without.records
