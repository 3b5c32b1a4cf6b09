"""Long-tail evaluation: per-class, Many/Medium/Few, worst-class and balanced accuracy.

Follows the LIFT/Decoupling convention: a class's group is decided by its *training* count
(Many: n_c > 100, Few: n_c < 20, Medium otherwise; thresholds configurable), and group accuracy is
the mean of the per-class accuracies of its classes (each class weighs the same). scikit-learn
computes the confusion matrix and the balanced accuracy; everything else is read off the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

GROUPS = ("many", "medium", "few")


def group_of(count: int, many_threshold: int = 100, few_threshold: int = 20) -> str:
    """Many (> many_threshold), Few (< few_threshold) or Medium, by the training count of a class."""
    if count > many_threshold:
        return "many"
    if count < few_threshold:
        return "few"
    return "medium"


def evaluate_predictions(y_true: Sequence[int], y_pred: Sequence[int], *, num_classes: int,
                         train_counts: Sequence[int], class_names: Sequence[str] | None = None,
                         many_threshold: int = 100, few_threshold: int = 20) -> dict:
    """All long-tail metrics of one set of predictions, as a JSON-friendly dictionary.

    Per-class accuracy is the recall of the class (diagonal of the row-normalised confusion matrix,
    rows = true class). Classes absent from the test set get ``None`` and are left out of the means.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y_true.shape} and {y_pred.shape}")
    if len(train_counts) != num_classes:
        raise ValueError(f"train_counts has {len(train_counts)} entries for {num_classes} classes")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(num_classes))
    support = cm.sum(axis=1)
    per_class = [float(cm[c, c] / support[c]) if support[c] else None for c in range(num_classes)]
    groups = [group_of(int(n), many_threshold, few_threshold) for n in train_counts]
    present = [c for c in range(num_classes) if per_class[c] is not None]

    def mean_of(classes: list[int]) -> float | None:
        values = [per_class[c] for c in classes if per_class[c] is not None]
        return float(np.mean(values)) if values else None

    worst = min(present, key=lambda c: per_class[c]) if present else None
    return {
        "num_test": int(y_true.size),
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else None,
        # sklearn's balanced accuracy = mean recall over the classes present in y_true
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if y_true.size else None,
        "per_class_accuracy": per_class,
        "group_accuracy": {g: mean_of([c for c in range(num_classes) if groups[c] == g]) for g in GROUPS},
        "group_num_classes": {g: sum(1 for x in groups if x == g) for g in GROUPS},
        "worst_class": None if worst is None else {"class": int(worst), "name": names[worst],
                                                   "accuracy": per_class[worst]},
        "groups": groups,
        "class_names": names,
        "train_counts": [int(n) for n in train_counts],
        "test_counts": [int(n) for n in support],
        "confusion_matrix": cm.tolist(),
        "thresholds": {"many": many_threshold, "few": few_threshold},
    }


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def metrics_markdown(metrics: dict, title: str = "Evaluation") -> str:
    """A short Markdown report: the summary line and a per-class table sorted by training count."""
    ga = metrics["group_accuracy"]
    gn = metrics["group_num_classes"]
    worst = metrics["worst_class"]
    lines = [f"## {title}", "",
             "| balanced acc. | Many | Medium | Few | worst class |",
             "|---:|---:|---:|---:|---:|",
             f"| {_fmt(metrics['balanced_accuracy'])} | {_fmt(ga['many'])} ({gn['many']}) | "
             f"{_fmt(ga['medium'])} ({gn['medium']}) | {_fmt(ga['few'])} ({gn['few']}) | "
             f"{_fmt(worst['accuracy']) if worst else '—'} ({worst['name'] if worst else '—'}) |",
             "", "Accuracies in %; (k) = number of classes in the group. Groups by training count: "
             f"Many > {metrics['thresholds']['many']}, Few < {metrics['thresholds']['few']}.", "",
             "| class | name | n_train | n_test | group | accuracy |", "|---:|---|---:|---:|---|---:|"]
    order = sorted(range(len(metrics["train_counts"])), key=lambda c: -metrics["train_counts"][c])
    for c in order:
        lines.append(f"| {c} | {metrics['class_names'][c]} | {metrics['train_counts'][c]} | "
                     f"{metrics['test_counts'][c]} | {metrics['groups'][c]} | "
                     f"{_fmt(metrics['per_class_accuracy'][c])} |")
    return "\n".join(lines) + "\n"
