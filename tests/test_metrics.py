"""Long-tail metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from scilt_theory.metrics import evaluate_predictions, group_of, metrics_markdown


@pytest.mark.parametrize("count,group", [(101, "many"), (100, "medium"), (20, "medium"), (19, "few"), (0, "few")])
def test_group_boundaries_follow_lift_convention(count, group):
    assert group_of(count) == group


def test_metrics_hand_computed():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 0, 0]
    m = evaluate_predictions(y_true, y_pred, num_classes=3, train_counts=[150, 50, 5], class_names=["a", "b", "c"])
    assert m["per_class_accuracy"] == [0.75, 0.5, 0.0]
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert m["group_accuracy"] == {"many": 0.75, "medium": 0.5, "few": 0.0}
    assert m["worst_class"] == {"class": 2, "name": "c", "accuracy": 0.0}
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [2, 0, 0]]
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert "| 2 | c | 5 | 2 | few | 0.0 [0.0, 84.2] |" in metrics_markdown(m)  # [Clopper–Pearson 95 %] of 0/2


def test_metrics_agree_with_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 6, 300))
    m = evaluate_predictions(y_true, y_pred, num_classes=6, train_counts=[200, 120, 60, 30, 10, 3])
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    np.testing.assert_allclose(m["per_class_accuracy"], recall_score(y_true, y_pred, average=None))


def test_absent_test_class_is_reported_as_none_and_left_out_of_means():
    m = evaluate_predictions([0, 0, 1], [0, 1, 1], num_classes=3, train_counts=[150, 150, 150])
    assert m["per_class_accuracy"][2] is None
    assert m["group_accuracy"]["many"] == pytest.approx(0.75)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="same length"):
        evaluate_predictions([0, 1], [0], num_classes=2, train_counts=[1, 1])
    with pytest.raises(ValueError, match="labels must lie"):
        evaluate_predictions([0, 5], [0, 1], num_classes=2, train_counts=[1, 1])
