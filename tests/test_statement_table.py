"""The margin statements as one table of axis combinations (statements/margin.py) and tightest_uniform's fixed
members (statements/tighter.py; proofs/data_dependent_radii.md §2)."""

from __future__ import annotations

import pytest
from synthetic import cosine_model as _model

from scilt_theory.grid import BoundGrid
from scilt_theory.schema import StatementRecord
from scilt_theory.statements import REGISTERED, STATEMENTS, TIGHTEST_UNIFORM, fused_model_bounds, headline_statements
from scilt_theory.statements.base import Statement
from scilt_theory.statements.margin import MARGIN_STATEMENTS, MARGIN_TABLE, MarginStatement, margin_name

S = 2.0


def test_every_row_of_the_table_is_registered_under_the_name_its_axes_give():
    names = [margin_name(r.form, r.complexity, r.contraction, r.radii) for r in MARGIN_TABLE]
    assert len(set(names)) == len(names) == 23
    assert names == [s.name for s in MARGIN_STATEMENTS]
    assert all(STATEMENTS[n] is s for n, s in zip(names, MARGIN_STATEMENTS))
    assert list(STATEMENTS) == [s.name for s in REGISTERED]
    # the names bounds.json, the reports and the tests use
    assert margin_name("overall") == "theorem53" and margin_name("per_class", "coupled") == "corollary54_coupled"
    assert margin_name("weighted", "bounded", "vector", "data") == "weighted_margin_bounded_features_data_radii"
    assert margin_name("per_class", "bounded", "classwise", "fusion") == "corollary54_classwise_bounded_fusion_radii"


def test_the_coupled_class_takes_no_other_radii_or_contraction():
    with pytest.raises(ValueError, match="coupled"):
        MarginStatement("overall", "coupled", "vector", "data")


def test_the_headline_and_the_figure_come_from_the_statements():
    assert [s.name for s in headline_statements()] == ["theorem53", "corollary54", "weighted_margin",
                                                       "tightest_uniform", "pac_bayes", "holdout_certificate",
                                                       "testset_certificate"]
    assert [s.label for s in headline_statements() if s.label] == [
        "contract (Thm 5.3 / Cor. 5.4)", "class-weighted", "tightest uniform (δ/J each)", "PAC-Bayes",
        "hold-out certificate", "test-set certificate"]
    from scilt_theory.plotting import figure_statements_drawn
    from scilt_theory.report import key_statements

    assert key_statements() == tuple(s.name for s in headline_statements())
    assert [name for name, _ in figure_statements_drawn()] == ["theorem53", "weighted_margin", "tightest_uniform",
                                                               "pac_bayes", "holdout_certificate",
                                                               "testset_certificate"]


def _tightest(heads_scale=1.0, **kw):
    psi1, psi2, _, labels, (u, v) = _model()
    u, v = heads_scale * u, heads_scale * v
    return fused_model_bounds(psi1, psi2, psi1 @ u.T + psi2 @ v.T, labels, num_classes=3, radius_penult=2 * S,
                              radius_final=S, grid=BoundGrid.geometric(0.2, 4 * S, 4), n_draws=0,
                              feature_norm_bound=1.0, head_weights=(u, v), coupled_scale=S,
                              statements=["tightest_uniform"], **kw).record("tightest_uniform")


class _Extra(Statement):
    name = "extra_uniform_for_a_test"
    theory = "THEORY §8, a test"

    def evaluate(self, ctx, delta):
        return [self.record(ctx, "overall", 0.0, delta, quantity="prior-weighted error")]


def test_registering_another_uniform_statement_does_not_change_delta_over_j():
    before = _tightest()
    STATEMENTS[_Extra.name] = _Extra()  # registered beside the others, as a new module would
    try:
        after = _tightest()
    finally:
        del STATEMENTS[_Extra.name]
    assert after.terms["members"] == before.terms["members"] and _Extra.name not in after.terms["members"]
    assert after.terms["delta_each"] == before.terms["delta_each"] == 0.05 / len(MARGIN_STATEMENTS)
    assert after.bound == before.bound > 0.0
    assert TIGHTEST_UNIFORM.members == MARGIN_STATEMENTS  # every row of today's table, named one by one


def test_j_is_fixed_by_the_configuration_not_by_the_trained_norms():
    """Heads 1.5 times larger leave the fusion-weight grid uncovered: those members give no value but still count."""
    small, large = _tightest(1.0), _tightest(1.5)
    fusion = {s.name for s in MARGIN_STATEMENTS if s.radii.key == "fusion"}
    assert fusion <= set(large.terms["members"]) and large.terms["members"] == small.terms["members"]
    assert large.terms["delta_each"] == small.terms["delta_each"]
    assert not fusion & {large.terms["attained_by"]}
    assert not fused_model_bounds_names(1.5) & fusion and fusion <= fused_model_bounds_names(1.0)


def fused_model_bounds_names(heads_scale: float) -> set[str]:
    """The statements with a value when evaluated on their own."""
    psi1, psi2, _, labels, (u, v) = _model()
    u, v = heads_scale * u, heads_scale * v
    rep = fused_model_bounds(psi1, psi2, psi1 @ u.T + psi2 @ v.T, labels, num_classes=3, radius_penult=2 * S,
                             radius_final=S, grid=BoundGrid.geometric(0.2, 4 * S, 4), n_draws=0,
                             feature_norm_bound=1.0, head_weights=(u, v), coupled_scale=S,
                             statements=[s.name for s in MARGIN_STATEMENTS if s.radii.key == "fusion"])
    return {r.name for r in rep.records if isinstance(r, StatementRecord) and r.bound is not None}


def test_a_new_row_is_a_working_statement_without_other_code():
    """A combination the table does not register (the weighted form, bounded features, vector contraction, on the
    fusion-weight grid) evaluates from its axes alone: adding it is one row of MARGIN_TABLE."""
    new = MarginStatement("weighted", "bounded", "vector", "fusion")
    assert new.name == "weighted_margin_bounded_features_fusion_radii" and new.name not in STATEMENTS
    psi1, psi2, scores, labels, heads = _model()
    ctx = fused_model_bounds(psi1, psi2, scores, labels, num_classes=3, radius_penult=2 * S, radius_final=S,
                             grid=BoundGrid.geometric(0.2, 4 * S, 4), n_draws=0, feature_norm_bound=1.0,
                             head_weights=heads, coupled_scale=S, statements=["weighted_margin"]).context
    assert new.applies(ctx)
    records = {r.target: r for r in new.evaluate(ctx, 0.05)}
    assert "balanced" in records and all(t == "balanced" or t.startswith("group:") for t in records)
    for r in records.values():
        t = r.terms
        assert r.bound == pytest.approx(t["train_margin_loss"] + t["complexity"] + t["confidence"])
        assert t["radius_penult"] + t["radius_final"] <= S * (2 + 1 / 100) + 1e-12  # a fusion-weight pair
