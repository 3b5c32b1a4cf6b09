"""Long-tail metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

from scilt_theory.metrics import (
    check_group_thresholds,
    class_groups,
    evaluate_predictions,
    group_of,
    metrics_markdown,
    resolve_groups,
)


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


def test_one_many_few_threshold_rule():
    # few <= many: every group keeps a range of counts (Medium: few <= n <= many); few = many + 1 leaves Medium none
    assert check_group_thresholds(100, 20) == (100, 20) and check_group_thresholds(4, 4) == (4, 4)
    assert class_groups([5, 4, 3], many_threshold=4, few_threshold=4) == ["many", "medium", "few"]
    for many, few in ((4, 5), (10, 11), (0, 1)):
        with pytest.raises(ValueError, match="few <= many"):
            check_group_thresholds(many, few)
    with pytest.raises(ValueError, match="few_threshold must be >= 0"):
        check_group_thresholds(10, -1)
    with pytest.raises(ValueError, match="non-negative"):
        class_groups([3, -1])
    # the schema of bounds.json and the data configuration apply the same rule
    from scilt_theory.data import DataConfig

    with pytest.raises(ValueError, match="few <= many"):
        DataConfig(many_threshold=10, few_threshold=11)


def test_resolve_groups_given_names_or_training_counts():
    assert resolve_groups(3, [500, 50, 5]) == ["many", "medium", "few"]
    assert resolve_groups(3, [1, 1, 1], class_counts=[500, 50, 5]) == ["many", "medium", "few"]
    assert resolve_groups(2, [1, 1], {0: "a", 1: "b"}) == ["a", "b"]
    with pytest.raises(ValueError, match="no group for class"):
        resolve_groups(2, [1, 1], {0: "a"})
    with pytest.raises(ValueError, match="2 entries for 3 classes"):
        resolve_groups(3, [1, 1, 1], ["a", "b"])
