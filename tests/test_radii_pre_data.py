"""The data-dependent radii grid comes from pre-data radii only (THEORY §8; proofs/data_dependent_radii.md).

A linear-head caller declares its radii in the grid and passes the trained weights' norms as ``radius_*`` (the
documented use of build_context). Those norms are seen after training: a radii grid built from them would choose a
radius after seeing the data without paying for it. The grid is built from ``class_radii`` (given, or the radii the
grid declares), so passing the trained norms cannot buy a smaller radius or a smaller bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import class_features

from scilt_theory.grid import BoundGrid
from scilt_theory.statements import Estimation, Hypothesis, Sample, build_context, fused_model_bounds
from scilt_theory.statements.radii import RADII_SPAN, data_radii_grid, trained_radii

K = 3
DATA_RADII = ("theorem53_data_radii", "corollary54_data_radii", "weighted_margin_data_radii",
              "theorem53_bounded_features_data_radii", "corollary54_bounded_features_data_radii",
              "weighted_margin_bounded_features_data_radii", "theorem53_classwise_bounded_data_radii",
              "corollary54_classwise_bounded_data_radii", "weighted_margin_classwise_bounded_data_radii")
#: radii declared in the grid before the data (a linear-head run)
GRID = BoundGrid.geometric(0.2, 8.0, 4, radii_penult=(1.0, 2.0, 4.0), radii_final=(0.5, 1.0, 2.0))


def _linear_heads(seed=0, counts=(40, 15, 6), d=5):
    """Unit features and heads with small trained row norms (about 1.1 and 0.6), well inside the grid's top."""
    rng = np.random.default_rng(seed)
    labels, psi1, psi2 = class_features(rng, counts, d, K)
    u, v = rng.normal(size=(K, d)), rng.normal(size=(K, d))
    u *= 1.1 / np.linalg.norm(u, axis=1).max()
    v *= 0.6 / np.linalg.norm(v, axis=1).max()
    return psi1, psi2, psi1 @ u.T + psi2 @ v.T, labels, (u, v)


def _bounds(radius_penult, radius_final, **kw):
    psi1, psi2, scores, labels, heads = _linear_heads()
    return fused_model_bounds(psi1, psi2, scores, labels, num_classes=K, radius_penult=radius_penult,
                              radius_final=radius_final, grid=GRID, n_draws=0, feature_norm_bound=1.0,
                              head_weights=heads, statements=DATA_RADII, **kw)


def _values(rep) -> dict:
    return {(r.name, r.target): r.bound for r in rep.records}


def test_trained_norms_passed_as_radii_cannot_buy_a_smaller_radius_or_bound():
    _, _, _, _, (u, v) = _linear_heads()
    norms = (float(np.linalg.norm(u, axis=1).max()), float(np.linalg.norm(v, axis=1).max()))
    as_documented = _bounds(*norms)       # the trained norms as radius_*, as build_context tells linear heads
    grid_top = _bounds(4.0, 2.0)          # the largest radii the grid declares
    for rep in (as_documented, grid_top):
        grid = data_radii_grid(rep.context)
        assert grid.radii_penult[-1] == pytest.approx(4.0) and grid.radii_final[-1] == pytest.approx(2.0)
        assert grid.radii_penult[0] == pytest.approx(4.0 / RADII_SPAN)
        assert trained_radii(rep.context) == pytest.approx(norms)
    assert as_documented.context.class_radii == grid_top.context.class_radii == (4.0, 2.0)
    values = _values(as_documented)
    assert {name for name, _ in values} == set(DATA_RADII)
    assert values == _values(grid_top)  # the radii passed do not move any data-radii value
    # power: a grid built from the trained norms (what an honest caller may only claim before training) is smaller
    bought = _values(_bounds(*norms, class_radii=norms))
    assert all(bought[key] < values[key] for key in values if values[key] is not None)


def test_explicit_class_radii_fix_the_grid_and_norms_above_them_get_no_value():
    rep = _bounds(1.2, 0.7, class_radii=(8.0, 4.0))
    grid = data_radii_grid(rep.context)
    assert grid.radii_penult[-1] == pytest.approx(8.0) and grid.radii_final[-1] == pytest.approx(4.0)
    too_small = _bounds(1.2, 0.7, class_radii=(1.0, 4.0))  # a trained row norm 1.1 above the class radius 1.0
    assert too_small.records == ()


def test_without_declared_radii_the_class_radii_are_the_radii_every_statement_uses():
    """Cosine heads: the grid declares ρ only and radius_* are the class radii (2s, s) fixed by s and the method."""
    psi1, psi2, scores, labels, heads = _linear_heads()
    sample = Sample(psi1, psi2, scores, labels, K)
    ctx = build_context(sample, Hypothesis(4.0, 2.0, head_weights=heads), Estimation(BoundGrid(rhos=(0.5, 1.0)),
                                                                                    n_draws=0))
    assert ctx.class_radii == (4.0, 2.0)
    pairs = build_context(sample, Hypothesis(1.2, 0.7),
                          Estimation(BoundGrid(rhos=(1.0,), radii_pairs=((3.0, 1.0), (2.0, 2.5))), n_draws=0))
    assert pairs.class_radii == (3.0, 2.5)


def test_class_radii_must_be_a_non_negative_pair():
    psi1, psi2, scores, labels, _ = _linear_heads()
    for bad in ((1.0,), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="class_radii"):
            build_context(Sample(psi1, psi2, scores, labels, K), Hypothesis(1.2, 0.7, class_radii=bad),
                          Estimation(GRID, n_draws=0))
