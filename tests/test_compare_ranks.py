"""compare's rank correlations across runs (Jiang et al. 2020) and the quantities its bound columns name."""

from __future__ import annotations

import pytest
from scipy.stats import kendalltau

from scilt_theory.compare import COLUMNS, RANK_TARGETS, rank_correlations, rank_markdown


def _rows():
    # five runs: the Thm 5.3 bound ranks the balanced error perfectly and the gap in reverse
    bounds = [1.2, 1.5, 0.9, 2.0, 1.1]
    errors = [0.2, 0.3, 0.1, 0.4, 0.15]
    gaps = [0.5, 0.2, 0.6, 0.1, 0.55]
    return [{"overall_bound": b, "balanced_test_error": e, "few_test_error": None, "generalisation_gap": g,
             "few_bound": 3.0} for b, e, g in zip(bounds, errors, gaps)], bounds, errors, gaps


def test_tau_across_runs_is_kendalls_tau_and_reports_negative_values():
    rows, bounds, errors, gaps = _rows()
    ranks = rank_correlations(rows)
    assert ranks["overall_bound"]["balanced_test_error"]["tau"] == pytest.approx(1.0)
    assert ranks["overall_bound"]["generalisation_gap"]["tau"] == pytest.approx(kendalltau(bounds, gaps).statistic)
    assert ranks["overall_bound"]["generalisation_gap"]["tau"] < 0
    assert "few_test_error" not in ranks["overall_bound"]       # no values: no entry
    assert ranks["few_bound"]["balanced_test_error"]["tau"] is None  # a constant bound ranks nothing
    text = rank_markdown(ranks)
    assert "+1.00" in text and "-1.00" in text and all(title in text for _, title in RANK_TARGETS)


def test_bound_columns_say_what_they_bound():
    titles = [t for key, t, _ in COLUMNS if key.endswith("_bound")]
    assert titles and all("error)" in t for t in titles), titles
