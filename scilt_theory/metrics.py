"""Long-tail evaluation: per-class, Many/Medium/Few, worst-class and balanced accuracy.

Follows the LIFT/Decoupling convention: a class's group is decided by its *training* count
(Many: n_c > 100, Few: n_c < 20, Medium otherwise; thresholds configurable), and group accuracy is
the mean of the per-class accuracies of its classes (each class weighs the same). scikit-learn
computes the confusion matrix and the balanced accuracy; everything else is read off the matrix.

Every accuracy comes with a two-sided 95 % interval (``intervals``): it is an estimate of the population accuracy
from a finite test sample, and the interval says how far it may be from it (THEORY §0; binomial.py: Clopper–Pearson
for a class and for pooled rates, simultaneous per-class intervals for the worst class and for unequal weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from scilt_theory.binomial import clopper_pearson_interval, max_rate_interval, mean_rate_interval
from scilt_theory.constraints import check_count, is_integer

GROUPS = ("many", "medium", "few")


def check_group_thresholds(many_threshold: Any, few_threshold: Any) -> tuple[int, int]:
    """The one Many/Few threshold rule: integers with ``0 <= few_threshold <= many_threshold``; returns (many, few).

    With :func:`group_of` (Many: n_c > many, Few: n_c < few) the three groups then split the counts into three
    ranges, none of them empty by construction: Medium is ``few <= n_c <= many``. ``few = many + 1`` would leave no
    count for Medium (a two-group split the reports would show as an always-empty Medium group), and a larger
    ``few`` would put a count in both Many and Few, so both are refused.
    """
    many = check_count(many_threshold, "many_threshold", 0)
    few = check_count(few_threshold, "few_threshold", 0)
    if few > many:
        raise ValueError(f"the Many/Few thresholds need 0 <= few <= many, got few_threshold {few!r} and "
                         f"many_threshold {many!r}")
    return many, few


def group_of(count: int, many_threshold: int = 100, few_threshold: int = 20) -> str:
    """Many (> many_threshold), Few (< few_threshold) or Medium, by the training count of a class (thresholds as
    :func:`check_group_thresholds` accepts them)."""
    if count > many_threshold:
        return "many"
    if count < few_threshold:
        return "few"
    return "medium"


def class_groups(counts: Sequence[int], many_threshold: int = 100, few_threshold: int = 20) -> list[str]:
    """The group of every class by its training count (:func:`group_of`), after checking the thresholds and the
    counts (so exactly 100 and exactly 20 are Medium with the defaults)."""
    many, few = check_group_thresholds(many_threshold, few_threshold)
    values = []
    for n in counts:
        if not (is_integer(n) or (isinstance(n, (float, np.floating)) and float(n).is_integer())) or n < 0:
            raise ValueError(f"class counts must be non-negative integers, got {list(counts)}")
        values.append(int(n))
    return [group_of(n, many, few) for n in values]


def resolve_groups(num_classes: int, sample_counts: Sequence[int],
                   groups: Sequence[str] | Mapping[int, str] | None = None, class_counts: Sequence[int] | None = None,
                   many_threshold: int = 100, few_threshold: int = 20) -> list[str]:
    """The group name of each of ``num_classes`` classes: the given ``groups`` (a sequence, or a mapping class ->
    name), else the groups (:func:`class_groups`) of the training counts ``class_counts``, else of the counts of
    the sample at hand."""
    if groups is not None:
        if isinstance(groups, Mapping):
            missing = [c for c in range(num_classes) if c not in groups]
            if missing:
                raise ValueError(f"class_groups has no group for class(es) {missing[:5]}.")
            return [str(groups[c]) for c in range(num_classes)]
        names = [str(g) for g in groups]
        if len(names) != num_classes:
            raise ValueError(f"class_groups has {len(names)} entries for {num_classes} classes.")
        return names
    counts = sample_counts if class_counts is None else class_counts
    if len(counts) != num_classes:
        raise ValueError(f"class_counts has {len(counts)} entries for {num_classes} classes.")
    return class_groups(counts, many_threshold, few_threshold)


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
    groups = class_groups(train_counts, many_threshold, few_threshold)
    present = [c for c in range(num_classes) if per_class[c] is not None]

    def mean_of(classes: list[int]) -> float | None:
        values = [per_class[c] for c in classes if per_class[c] is not None]
        return float(np.mean(values)) if values else None

    worst = min(present, key=lambda c: per_class[c]) if present else None
    errors = [int(support[c] - cm[c, c]) for c in range(num_classes)]
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
        "intervals": accuracy_intervals(errors, support.tolist(), groups),
    }


CONFIDENCE = 0.95


def accuracy_intervals(errors: Sequence[int], support: Sequence[int], groups: Sequence[str],
                       confidence: float = CONFIDENCE) -> dict:
    """Two-sided ``confidence`` intervals [low, high] of the population accuracies that ``evaluate_predictions``
    estimates (1 − the error intervals of binomial.py); None where a class has no test image."""
    present = [c for c in range(len(errors)) if support[c]]

    def flip(interval: tuple[float, float]) -> list[float]:
        return [1.0 - interval[1], 1.0 - interval[0]]

    def mean_of(classes: list[int]) -> list[float] | None:
        classes = [c for c in classes if support[c]]
        if not classes:
            return None
        return flip(mean_rate_interval([errors[c] for c in classes], [support[c] for c in classes],
                                       [1.0 / len(classes)] * len(classes), confidence))

    if not present:
        return {"confidence": confidence}
    total = sum(support[c] for c in present)
    return {
        "confidence": confidence,
        "method": "Clopper-Pearson (scipy.stats.binomtest, exact) per class; the Chernoff (kl) interval for rates "
                  "pooled over classes (a Poisson-binomial count); simultaneous per-class intervals (Bonferroni) for "
                  "the worst class and for unequally weighted means",
        "accuracy": flip(mean_rate_interval([errors[c] for c in present], [support[c] for c in present],
                                            [support[c] / total for c in present], confidence)),
        "balanced_accuracy": mean_of(present),
        "per_class_accuracy": [flip(clopper_pearson_interval(errors[c], support[c], confidence)) if support[c]
                               else None for c in range(len(errors))],
        "group_accuracy": {g: mean_of([c for c in present if groups[c] == g]) for g in GROUPS},
        "worst_class": flip(max_rate_interval([errors[c] for c in present], [support[c] for c in present],
                                              confidence)),
    }


def md(text) -> str:
    """``text`` safe inside a Markdown table cell: ``|`` escaped, line breaks and tabs made spaces (class names
    of real data sets are folder names, and may hold either)."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").split())


def _fmt(value: float | None, interval: Sequence[float] | None = None) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}" + ("" if interval is None else f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]")


def metrics_markdown(metrics: dict, title: str = "Evaluation") -> str:
    """A short Markdown report: the summary line and a per-class table sorted by training count."""
    ga = metrics["group_accuracy"]
    gn = metrics["group_num_classes"]
    worst = metrics["worst_class"]
    ci = metrics.get("intervals") or {}
    gi = ci.get("group_accuracy") or {}
    pci = ci.get("per_class_accuracy") or [None] * len(metrics["train_counts"])
    lines = [f"## {title}", "",
             "| balanced acc. | Many | Medium | Few | worst class |",
             "|---:|---:|---:|---:|---:|",
             f"| {_fmt(metrics['balanced_accuracy'], ci.get('balanced_accuracy'))} | "
             f"{_fmt(ga['many'], gi.get('many'))} ({gn['many']}) | "
             f"{_fmt(ga['medium'], gi.get('medium'))} ({gn['medium']}) | {_fmt(ga['few'], gi.get('few'))} "
             f"({gn['few']}) | {_fmt(worst['accuracy'], ci.get('worst_class')) if worst else '—'} "
             f"({md(worst['name']) if worst else '—'}) |",
             "", "Accuracies in %; (k) = number of classes in the group. Groups by training count: "
             f"Many > {metrics['thresholds']['many']}, Few < {metrics['thresholds']['few']}."
             + (" [low, high]: the population accuracy estimate's two-sided 95 % interval (Clopper–Pearson per "
                "class, kl for pooled rates, simultaneous over the classes for the worst class)."
                if ci.get("balanced_accuracy") else ""), "",
             "| class | name | n_train | n_test | group | accuracy |", "|---:|---|---:|---:|---|---:|"]
    order = sorted(range(len(metrics["train_counts"])), key=lambda c: -metrics["train_counts"][c])
    for c in order:
        lines.append(f"| {c} | {md(metrics['class_names'][c])} | {metrics['train_counts'][c]} | "
                     f"{metrics['test_counts'][c]} | {metrics['groups'][c]} | "
                     f"{_fmt(metrics['per_class_accuracy'][c], pci[c])} |")
    return "\n".join(lines) + "\n"


def kendall_tau(pairs: Sequence[tuple[float, float]], min_pairs: int = 2) -> tuple[float | None, float | None]:
    """Kendall τ-b and its two-sided p-value (scipy.stats.kendalltau) of (x, y) pairs: does a smaller x go with a
    smaller y? (None, None) with fewer than ``min_pairs`` pairs or with one side constant (τ undefined)."""
    from scipy.stats import kendalltau

    if len(pairs) < min_pairs:
        return None, None
    xs, ys = zip(*pairs)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    res = kendalltau(xs, ys)
    return float(res.statistic), float(res.pvalue)
