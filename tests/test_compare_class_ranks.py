"""compare's class-by-class Kendall τ: across runs for each class, and the within-run τ summarised over runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scipy.stats import kendalltau

from scilt_theory.compare import class_rank_correlations, class_rank_markdown
from scilt_theory.schema import Comparison, RankCorrelation, StatementRecord


def _record(name: str, c: int, bound: float | None, error: float | None) -> StatementRecord:
    compared = None if error is None else Comparison(quantity="class error", split="test", value=error,
                                                     same_distribution=True)
    return StatementRecord(name=name, theory="THEORY §4", target=f"class:{c}", certificate=True, bound=bound,
                           vacuous=None if bound is None else bound > 1, delta=0.05, compared_with=compared)


def _run(bounds: list[float], errors: list[float], tau: float | None) -> SimpleNamespace:
    records = [_record("corollary54", c, b, e) for c, (b, e) in enumerate(zip(bounds, errors))]
    records.append(StatementRecord(name="corollary54", theory="THEORY §4", target="overall", certificate=True,
                                   bound=0.5, vacuous=False, delta=0.05))  # not a class target: ignored
    ranks = [RankCorrelation(statement="corollary54", tau=tau, p_value=None, n=len(bounds))]
    return SimpleNamespace(statements=records, rank_correlation=ranks)


def test_across_runs_is_kendalls_tau_of_each_class_over_the_runs():
    # class 0: bound and error agree in order over 4 runs; class 1: they disagree in order
    b0, e0 = [1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4]
    b1, e1 = [1.0, 2.0, 3.0, 4.0], [0.4, 0.1, 0.3, 0.2]
    runs = [_run([b0[i], b1[i]], [e0[i], e1[i]], tau) for i, tau in enumerate([1.0, -1.0, 1.0, None])]
    ranks = class_rank_correlations(runs)
    assert ranks["across_runs"]["corollary54"]["class:0"]["tau"] == pytest.approx(1.0)
    assert ranks["across_runs"]["corollary54"]["class:1"]["tau"] == pytest.approx(kendalltau(b1, e1).statistic)
    assert ranks["across_runs"]["corollary54"]["class:1"]["n"] == 4
    assert "overall" not in ranks["across_runs"]["corollary54"]
    within = ranks["within_runs"]["corollary54"]
    assert within == {"mean": pytest.approx(1 / 3), "min": -1.0, "max": 1.0, "runs": 3, "positive": 2}
    text = class_rank_markdown(ranks, class_names=["head", "tail"])
    assert "| corollary54 | +1.00 (n = 4) |" in text and "tail" in text


def test_no_tau_from_too_few_runs_a_constant_side_or_a_missing_comparison():
    runs = [_run([1.0, 2.0], [0.1, 0.5], None), _run([2.0, 3.0], [0.2, 0.5], None)]
    ranks = class_rank_correlations(runs)
    assert ranks["across_runs"]["corollary54"]["class:0"] == {"tau": None, "p_value": None, "n": 2}
    runs.append(_run([3.0, 4.0], [0.3, 0.5], None))  # class 1's error is constant
    ranks = class_rank_correlations(runs)
    assert ranks["across_runs"]["corollary54"]["class:1"]["tau"] is None
    assert ranks["across_runs"]["corollary54"]["class:0"]["tau"] == pytest.approx(1.0)
    lonely = SimpleNamespace(statements=[_record("corollary54", 0, 0.9, None)], rank_correlation=[])
    assert class_rank_correlations([lonely]) == {"across_runs": {}, "within_runs": {}}
