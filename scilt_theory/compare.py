"""The comparison table: runs of several methods × seeds → per-run rows → mean ± std per method → Markdown.

Input per run: the ``metrics`` of its run.pt (balanced test split) and its bounds.json. Every figure in the table
comes from those two files, so a table can be rebuilt from the run directories alone. Means are over seeds, the
spread is the sample standard deviation (ddof = 1; none with one seed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["ACCURACY_KEYS", "CLASS_RANKED_STATEMENTS", "COLUMNS", "PAIRED_KEYS", "RANKED_STATEMENTS", "RANK_TARGETS",
           "class_rank_correlations", "class_rank_markdown", "compare_markdown", "paired_difference",
           "paired_differences", "paired_markdown", "probe_markdown", "probe_rows", "rank_correlations",
           "rank_markdown", "reference_row", "run_row", "summarise"]

#: (key, column title, kind) of the table; kind "acc" is printed in %, "value" as a number
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("balanced_accuracy", "balanced acc", "acc"),
    ("many_accuracy", "Many", "acc"),
    ("medium_accuracy", "Medium", "acc"),
    ("few_accuracy", "Few", "acc"),
    ("worst_class_accuracy", "worst class", "acc"),
    ("overall_bound", "Thm 5.3 bound (prior-weighted error)", "value"),
    ("tightest_overall_bound", "tightest uniform bound (prior-weighted error)", "value"),
    ("holdout_overall_bound", "hold-out certificate (prior-weighted error)", "value"),
    ("worst_class_bound", "Cor 5.4 worst-class bound (worst-class error)", "value"),
    ("few_bound", "Cor 5.4 Few bound (Few balanced error)", "value"),
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
        "overall_test_error": report.overall.prior_weighted_test_error,  # the quantity Theorem 5.3 bounds
        "balanced_test_error": report.overall.balanced_test_error,
        "generalisation_gap": None if report.overall.prior_weighted_test_error is None or
        report.overall.train_error is None else report.overall.prior_weighted_test_error - report.overall.train_error,
        "tightest_overall_bound": _bound(report, "tightest_uniform", "overall"),
        "tightest_few_bound": _bound(report, "tightest_uniform", "group:few"),
        "holdout_overall_bound": _bound(report, "holdout_certificate", "overall"),
        "holdout_few_bound": _bound(report, "holdout_certificate", "group:few"),
        "pac_bayes_overall_bound": _bound(report, "pac_bayes", "overall"),
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


def _bound(report, name: str, target: str) -> float | None:
    record = report.statement(name, target)
    return None if record is None else record.bound


#: (row key, what it is) of the statements ranked across runs, and of the errors they are ranked against
RANKED_STATEMENTS: tuple[tuple[str, str], ...] = (
    ("overall_bound", "Thm 5.3 (prior-weighted error)"), ("tightest_overall_bound", "tightest uniform (overall)"),
    ("pac_bayes_overall_bound", "PAC-Bayes (overall)"), ("holdout_overall_bound", "hold-out certificate (overall)"),
    ("few_bound", "Cor 5.4 Few mean"), ("tightest_few_bound", "tightest uniform (Few)"),
    ("holdout_few_bound", "hold-out certificate (Few)"), ("worst_class_bound", "Cor 5.4 worst class"))
RANK_TARGETS: tuple[tuple[str, str], ...] = (
    ("balanced_test_error", "balanced test error"), ("few_test_error", "Few test error"),
    ("generalisation_gap", "generalisation gap (prior-weighted test − train error)"))


def rank_correlations(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Kendall τ-b across runs (methods × seeds) between each statement's bound and each error (Jiang et al.
    2020): does a smaller bound go with a smaller error? statement -> target -> {tau, p_value, n}."""
    from scilt_theory.metrics import kendall_tau

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, _ in RANKED_STATEMENTS:
        for target, _ in RANK_TARGETS:
            pairs = [(r[key], r[target]) for r in rows if r.get(key) is not None and r.get(target) is not None]
            tau, p = kendall_tau(pairs, min_pairs=3)
            if pairs:
                out.setdefault(key, {})[target] = {"tau": tau, "p_value": p, "n": len(pairs)}
    return out


def rank_markdown(ranks: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The τ table of :func:`rank_correlations` (a section of compare.md)."""
    titles = dict(RANKED_STATEMENTS)
    lines = ["## Do the bounds predict the errors across runs? (Kendall τ, Jiang et al. 2020)", "",
             "τ-b across all runs (methods × seeds) between each statement's value and each error; τ > 0: a smaller "
             "bound goes with a smaller error. τ ≤ 0 says the statement does not rank the runs as their errors do.",
             "", "| statement | " + " | ".join(t for _, t in RANK_TARGETS) + " |",
             "|---|" + "---:|" * len(RANK_TARGETS)]
    for key, by_target in ranks.items():
        cells = []
        for target, _ in RANK_TARGETS:
            stat = by_target.get(target)
            cells.append("—" if stat is None or stat["tau"] is None else
                         f"{stat['tau']:+.2f} (p = {stat['p_value']:.2g}, n = {stat['n']})")
        lines.append(f"| {titles.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _mean_std(values: Iterable[float | None]) -> dict[str, Any]:
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1)) if len(present) > 1 else None
    return {"mean": mean, "std": std, "n": len(present)}


def summarise(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """method -> key -> {"mean", "std", "n"} over its seeds, for every numeric key of any row (:func:`run_row`,
    :func:`reference_row`); a key a row lacks counts as None for it (a reference has no bounds)."""
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("method", "seed")))
    keys = [k for k in keys if not any(isinstance(r.get(k), (bool, str)) for r in rows)]
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        out[method] = {k: _mean_std(r.get(k) for r in mine) for k in keys}
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


def compare_markdown(summary: Mapping[str, Mapping[str, Any]], *, title: str, notes: Sequence[str] = (),
                     paired: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                     sections: Sequence[str] = ()) -> str:
    """The comparison table: one row per method, mean ± std over seeds; accuracies in %. ``paired``
    (:func:`paired_differences`, or a list of them: one per reference) adds a table per reference after it;
    ``sections`` are further Markdown blocks appended."""
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
    text = "\n".join(lines) + "\n"
    tables = [] if paired is None else [paired] if isinstance(paired, Mapping) else list(paired)
    for block in [paired_markdown(table) for table in tables if table["methods"]] + list(sections):
        text += "\n" + block.rstrip("\n") + "\n"
    return text


# ---- reference rows (no training, no bounds) --------------------------------------------------------------------
#: the accuracy keys of a row, read from a run's metrics as :func:`run_row` reads them
ACCURACY_KEYS = ("balanced_accuracy", "many_accuracy", "medium_accuracy", "few_accuracy", "worst_class_accuracy")


def reference_row(method: str, seed: int, metrics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """A reference's row (e.g. ``linear_probe[final]``): its test accuracies, no bounds (their columns show "—");
    ``extra`` holds its own numbers (a probe's C, its accuracy at C = 1, …)."""
    groups = metrics.get("group_accuracy", {})
    return {"method": method, "seed": int(seed), "balanced_accuracy": metrics["balanced_accuracy"],
            "many_accuracy": groups.get("many"), "medium_accuracy": groups.get("medium"),
            "few_accuracy": groups.get("few"), "worst_class_accuracy": metrics["worst_class"]["accuracy"], **extra}


def probe_rows(result: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """The rows linear_probe[VIEW] of one seed's probe result (scilt_theory/linear_probe.py; the CV-chosen C, and
    C = 1 beside it)."""
    rows = []
    for view, entry in result["views"].items():
        c1 = entry["c1"]["metrics"]
        rows.append(reference_row(f"linear_probe[{view}]", seed, entry["cv"]["metrics"], probe_c=entry["cv"]["C"],
                                  c1_balanced_accuracy=c1["balanced_accuracy"],
                                  c1_few_accuracy=(c1.get("group_accuracy") or {}).get("few"),
                                  c1_worst_class_accuracy=c1["worst_class"]["accuracy"]))
    return rows


def probe_markdown(summary: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                   names: Sequence[str]) -> str:
    """The linear probe at the CV-chosen C against C = 1 (balanced accuracy, mean ± std over seeds)."""
    lines = ["## Linear probe: C chosen by cross-validation (main rows) and C = 1", "",
             "| reference | C chosen per seed | balanced acc, CV C | balanced acc, C = 1 | Few, C = 1 | "
             "worst class, C = 1 |", "|---|---:|---:|---:|---:|---:|"]
    for name in names:
        stats = summary[name]
        chosen = ", ".join(f"{r['probe_c']:g}" for r in rows if r["method"] == name)
        lines.append(f"| {name} | {chosen} | {_cell(stats['balanced_accuracy'], 'acc')} | "
                     f"{_cell(stats['c1_balanced_accuracy'], 'acc')} | {_cell(stats['c1_few_accuracy'], 'acc')} | "
                     f"{_cell(stats['c1_worst_class_accuracy'], 'acc')} |")
    lines += ["", "Logistic regression (class_weight balanced, lbfgs) on the frozen backbone's L2-normalised CLS "
                  "features of the fit split; C from {0.01, 0.1, 1, 10, 100, 1000} by stratified k-fold CV "
                  "(balanced accuracy, k = min(5, smallest class)). Accuracies in % on the balanced test split."]
    return "\n".join(lines) + "\n"


# ---- paired differences against a reference method -------------------------------------------------------------
#: (row key, title) of the paired comparison
PAIRED_KEYS: tuple[tuple[str, str], ...] = (("balanced_accuracy", "balanced"), ("few_accuracy", "Few"),
                                            ("worst_class_accuracy", "worst class"))
PAIRED_CONFIDENCE = 0.95


def paired_difference(values: Mapping[int, float | None], reference: Mapping[int, float | None],
                      confidence: float = PAIRED_CONFIDENCE) -> dict[str, Any]:
    """Mean of ``values[s] − reference[s]`` over the seeds s both have (a value of None drops its seed), its sample
    standard deviation (ddof = 1), the ``confidence`` t-interval of the mean, mean ± t_{n−1} · std / √n, and the
    two-sided paired t-test p-value (``scipy.stats.ttest_rel``). With one pair there is no spread (std, interval
    and p are None); with zero spread the interval is the point and t, p are undefined (None)."""
    from scipy import stats

    seeds = sorted(s for s in set(values) & set(reference) if values[s] is not None and reference[s] is not None)
    diffs = [float(values[s]) - float(reference[s]) for s in seeds]
    n = len(diffs)
    out: dict[str, Any] = {"mean": None, "std": None, "n": n, "seeds": seeds, "ci_low": None, "ci_high": None,
                           "t": None, "p_value": None, "confidence": confidence}
    if not n:
        return out
    mean = sum(diffs) / n
    out["mean"] = mean
    if n < 2:
        return out
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    out.update(std=std, ci_low=mean - half, ci_high=mean + half)
    if std > 0:
        test = stats.ttest_rel([float(values[s]) for s in seeds], [float(reference[s]) for s in seeds])
        out.update(t=float(test.statistic), p_value=float(test.pvalue))
    return out


def paired_differences(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], reference: str = "final_only",
                       keys: Sequence[tuple[str, str]] = PAIRED_KEYS,
                       confidence: float = PAIRED_CONFIDENCE) -> dict[str, Any]:
    """Per method (the reference itself left out), :func:`paired_difference` against ``reference`` for each key.

    Pairs are made by seed: the same seed means the same split and the same initialisation, so the difference
    removes what the seed alone does. A method whose seeds differ from the reference's is paired on the common
    seeds only (``common_seeds_only`` true, ``unpaired_seeds`` lists the others)."""
    ref = {int(r["seed"]): r for r in rows if r["method"] == reference}
    out: dict[str, Any] = {}
    for method in methods:
        if method == reference:
            continue
        mine = {int(r["seed"]): r for r in rows if r["method"] == method}
        entry: dict[str, Any] = {"seeds": sorted(set(mine) & set(ref)),
                                 "unpaired_seeds": sorted(set(mine) ^ set(ref)),
                                 "common_seeds_only": set(mine) != set(ref)}
        for key, _ in keys:
            entry[key] = paired_difference({s: r.get(key) for s, r in mine.items()},
                                           {s: r.get(key) for s, r in ref.items()}, confidence)
        out[method] = entry
    return {"reference": reference, "confidence": confidence, "keys": [k for k, _ in keys], "methods": out}


def _pp(value: float, sign: bool = True) -> str:
    """A difference of accuracies in percentage points."""
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _paired_cell(stat: Mapping[str, Any]) -> str:
    if stat["mean"] is None:
        return "—"
    text = _pp(stat["mean"])
    if stat["std"] is None:
        return text + " (one pair)"
    text += f" ± {_pp(stat['std'], sign=False)} [{_pp(stat['ci_low'])}, {_pp(stat['ci_high'])}]"
    return text + (f", p = {stat['p_value']:.3g}" if stat["p_value"] is not None else ", p undefined (no spread)")


def paired_markdown(paired: Mapping[str, Any], keys: Sequence[tuple[str, str]] = PAIRED_KEYS) -> str:
    """The second table: per method, the paired differences against the reference, in percentage points."""
    reference, level = paired["reference"], int(round(100 * paired["confidence"]))
    lines = [f"## Paired differences against {reference}", "",
             "| method | pairs | " + " | ".join(f"Δ {title}" for _, title in keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    notes = []
    for method, entry in paired["methods"].items():
        cells = [_paired_cell(entry[key]) for key, _ in keys]
        lines.append(f"| {method} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
        if entry["common_seeds_only"]:
            notes.append(f"- {method}: paired on the seeds it shares with {reference} only "
                         f"({', '.join(map(str, entry['seeds'])) or 'none'}; unpaired: "
                         f"{', '.join(map(str, entry['unpaired_seeds']))}).")
    lines += ["", f"Method minus {reference} on the same seed (same split, same initialisation), in percentage "
                  f"points: mean ± sample std [{level} % t-interval of the mean], two-sided paired t-test p-value. "
                  f"A class group without test classes drops its seed from that column.", *notes]
    return "\n".join(lines) + "\n"


# ---- Kendall τ class by class ----------------------------------------------------------------------------------
#: statements whose class records are ranked against the class errors they bound
CLASS_RANKED_STATEMENTS: tuple[str, ...] = ("corollary54", "tightest_uniform", "pac_bayes", "holdout_certificate")


def class_rank_correlations(reports: Sequence[Any], statements: Sequence[str] = CLASS_RANKED_STATEMENTS
                            ) -> dict[str, Any]:
    """Kendall τ-b between each statement's class bounds and the class errors they stand beside, two ways.

    ``across_runs``: for every class c, τ over the runs (methods × seeds) between the statement's class-c bound and
    the class-c error it is compared with (record.compared_with: the same quantity, on the test split or, for a
    hold-out certificate, its own classifier's errors); does a run with a smaller bound for c err less on c?
    ``within_runs``: the τ across classes inside each run (bounds.json ``rank_correlation``), summarised over the
    runs (mean, min, max, how many positive): does a statement rank one model's classes as their errors do?
    ``reports`` are :class:`~scilt_theory.schema.BoundsReport` objects (or their bounds.json dicts); only their
    ``statements`` and ``rank_correlation`` are read."""
    from scilt_theory.metrics import kendall_tau
    from scilt_theory.schema import BoundsReport
    from scilt_theory.statements.views import class_bound_error_pairs

    reports = [BoundsReport.from_json(r) if isinstance(r, Mapping) else r for r in reports]
    across: dict[str, dict[str, Any]] = {}
    within: dict[str, dict[str, Any]] = {}
    for name in statements:
        by_class: dict[str, list[tuple[float, float]]] = {}
        for report in reports:
            for target, pair in class_bound_error_pairs(report.statements, name).items():
                by_class.setdefault(target, []).append(pair)
        for target, pairs in sorted(by_class.items(), key=lambda kv: int(kv[0].split(":", 1)[1])):
            tau, p = kendall_tau(pairs, min_pairs=3)
            across.setdefault(name, {})[target] = {"tau": tau, "p_value": p, "n": len(pairs)}
        taus = [rc.tau for report in reports for rc in report.rank_correlation
                if rc.statement == name and rc.tau is not None]
        if taus:
            within[name] = {"mean": sum(taus) / len(taus), "min": min(taus), "max": max(taus), "runs": len(taus),
                            "positive": sum(t > 0 for t in taus)}
    return {"across_runs": across, "within_runs": within}


def class_rank_markdown(ranks: Mapping[str, Any], class_names: Sequence[str] | None = None) -> str:
    """The two class-by-class τ tables of :func:`class_rank_correlations` (a section of compare.md)."""
    across, within = ranks["across_runs"], ranks["within_runs"]
    targets = sorted({t for by in across.values() for t in by}, key=lambda t: int(t.split(":", 1)[1]))

    def title(target: str) -> str:
        c = int(target.split(":", 1)[1])
        return class_names[c] if class_names is not None and c < len(class_names) else target

    lines = ["## Do the class bounds rank runs and classes as the class errors do? (Kendall τ-b)", "",
             "Across runs, class by class: τ over all runs (methods × seeds) between a statement's bound for the "
             "class and that class's error (the quantity the bound stands beside). τ > 0: a run with a smaller bound "
             "for the class errs less on it.", "",
             "| statement | " + " | ".join(title(t) for t in targets) + " |", "|---|" + "---:|" * len(targets)]
    for name, by_target in across.items():
        cells = []
        for t in targets:
            stat = by_target.get(t)
            cells.append("—" if stat is None or stat["tau"] is None else f"{stat['tau']:+.2f} (n = {stat['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if within:
        lines += ["", "Within runs, across classes (bounds.json `rank_correlation` of each run): τ between a "
                      "statement's class bounds and the class errors, summarised over the runs.", "",
                  "| statement | runs | mean τ | min | max | runs with τ > 0 |", "|---|---:|---:|---:|---:|---:|"]
        for name, s in within.items():
            lines.append(f"| {name} | {s['runs']} | {s['mean']:+.2f} | {s['min']:+.2f} | {s['max']:+.2f} | "
                         f"{s['positive']} |")
    return "\n".join(lines) + "\n"
