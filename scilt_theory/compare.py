"""The comparison table: runs of several methods × seeds → per-run rows → mean ± std per method → Markdown.

Input per run: the ``metrics`` of its run.pt (balanced test split) and its bounds.json. Every figure in the table
comes from those two files, so a table can be rebuilt from the run directories alone. Means are over seeds, the
spread is the sample standard deviation (ddof = 1; none with one seed).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["COLUMNS", "run_row", "summarise", "compare_markdown"]

#: (key, column title, kind) of the table; kind "acc" is printed in %, "value" as a number
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("balanced_accuracy", "balanced acc", "acc"),
    ("many_accuracy", "Many", "acc"),
    ("medium_accuracy", "Medium", "acc"),
    ("few_accuracy", "Few", "acc"),
    ("worst_class_accuracy", "worst class", "acc"),
    ("overall_bound", "bound (Thm 5.3)", "value"),
    ("worst_class_bound", "worst-class bound (Cor 5.4)", "value"),
    ("few_bound", "Few bound", "value"),
    ("erc_penultimate", "ERC F_{N-1}", "value"),
    ("erc_final", "ERC F_N", "value"),
    ("erc_sum", "ERC sum", "value"),
    ("test_spectral_norm", "test ‖C‖₂", "value"),
)


def run_row(method: str, seed: int, metrics: Mapping[str, Any], bounds: Any) -> dict[str, Any]:
    """One run's numbers (None where a group has no class, e.g. no Medium class).

    ``bounds`` is the run's bounds report (a :class:`~scilt_theory.schema.BoundsReport` or its bounds.json object).
    """
    from scilt_theory.schema import BoundsReport

    report = bounds if isinstance(bounds, BoundsReport) else BoundsReport.from_json(bounds)
    groups = metrics.get("group_accuracy", {})
    few = report.groups.get("few")
    rc = report.rademacher
    spectral = report.spectral or {}
    return {
        "method": method, "seed": int(seed),
        "balanced_accuracy": metrics["balanced_accuracy"],
        "many_accuracy": groups.get("many"), "medium_accuracy": groups.get("medium"),
        "few_accuracy": groups.get("few"),
        "worst_class_accuracy": metrics["worst_class"]["accuracy"],
        "overall_bound": report.overall.bound,
        "overall_test_error": report.overall.balanced_test_error,
        "worst_class_bound": report.worst_class.bound,
        "worst_class_test_error": report.worst_class.test_error,
        "few_bound": None if few is None else few.bound,
        "few_test_error": None if few is None else few.test_error,
        "erc_penultimate": rc.penultimate.value, "erc_final": rc.final.value, "erc_sum": rc.sum.value,
        "coupled_ratio": None if report.coupled is None else report.coupled.ratio,
        "test_spectral_norm": (spectral.get("test") or {}).get("norm_2"),
        "train_spectral_norm": (spectral.get("train") or {}).get("norm_2"),
        "alpha": report.run.alpha,
    }


def _mean_std(values: Iterable[float | None]) -> dict[str, Any]:
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1)) if len(present) > 1 else None
    return {"mean": mean, "std": std, "n": len(present)}


def summarise(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """method -> key -> {"mean", "std", "n"} over its seeds, for every numeric key of :func:`run_row`."""
    keys = [k for k in (rows[0] if rows else {}) if k not in ("method", "seed")]
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        out[method] = {k: _mean_std(r[k] for r in mine) for k in keys}
        out[method]["seeds"] = [r["seed"] for r in mine]
    return out


def _cell(stat: Mapping[str, Any], kind: str) -> str:
    if stat["mean"] is None:
        return "—"
    scale, fmt = (100.0, "{:.1f}") if kind == "acc" else (1.0, "{:.3g}")
    text = fmt.format(scale * stat["mean"])
    if stat["std"] is not None:
        text += " ± " + fmt.format(scale * stat["std"])
    return text


def compare_markdown(summary: Mapping[str, Mapping[str, Any]], *, title: str, notes: Sequence[str] = ()) -> str:
    """The comparison table: one row per method, mean ± std over seeds; accuracies in %."""
    header = "| method | seeds | " + " | ".join(title_ for _, title_, _ in COLUMNS) + " |"
    rule = "|---|---:|" + "---:|" * len(COLUMNS)
    lines = [f"# {title}", "", header, rule]
    for method, stats in summary.items():
        cells = [_cell(stats[key], kind) for key, _, kind in COLUMNS]
        lines.append(f"| {method} | {len(stats['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "Accuracies on the balanced test split, in %; bounds and ERCs (empirical Rademacher complexities, "
                  "THEORY §1, at the method's own radii) from `python -m experiments.bounds` on the training sample; "
                  "mean ± sample std over seeds. A bound above 1 is vacuous and reported as computed."]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
