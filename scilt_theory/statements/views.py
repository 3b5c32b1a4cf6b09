"""The report's views (overall, per class, groups, worst class, complexities), built from the statements' records.

Nothing here computes a bound: every number comes from a record of Theorem 5.3 or Corollary 5.4 (or from the
context's complexities scaled to the radii a record chose, Lemma 5.1 scaling). The empirical errors the views stand
beside are passed in by the caller (they come from the test split, not from the bound sample).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from scilt_theory.binomial import clopper_pearson_interval, max_rate_interval, mean_rate_interval
from scilt_theory.bounds import lemma51_scale, lemma51_sum
from scilt_theory.metrics import kendall_tau
from scilt_theory.schema import (
    CertificateBlock,
    CertificateRow,
    ClassRademacher,
    ClassRow,
    Comparison,
    DeltaEvent,
    GroupRow,
    OverallRow,
    Rademacher,
    RankCorrelation,
    StatementRecord,
    WorstClassRow,
)
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.margin import COROLLARY54, THEOREM53
from scilt_theory.statements.targets import class_target, group_target

__all__ = ["Views", "attach_comparisons", "build_views", "certificate_block", "delta_budget", "find_record",
           "mean_of_present", "prior_weighted", "rank_correlations"]


@dataclass(frozen=True)
class Views:
    """The views of bounds.json, in schema types."""

    overall: OverallRow
    rademacher: Rademacher
    per_class: list[ClassRow]
    groups: dict[str, GroupRow]
    worst_class: WorstClassRow
    overall_grid: list[dict]


def find_record(records: Sequence[StatementRecord], name: str, target: str) -> StatementRecord:
    for r in records:
        if r.name == name and r.target == target:
            return r
    raise ValueError(f"the statements hold no {name} record for {target!r}")


def mean_of_present(values: Sequence[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def build_views(ctx: BoundContext, records: Sequence[StatementRecord], *,
                test_errors: Sequence[float | None] | None = None, test_counts: Sequence[int] | None = None,
                train_error: float | None = None) -> Views:
    """Overall / per-class / group / worst-class views of the Theorem 5.3 and Corollary 5.4 records.

    ``test_errors[c]`` (None for a class without test samples) and ``test_counts[c]`` fill the empirical columns;
    the overall test error is the balanced one (the mean of the per-class errors).
    """
    k = ctx.num_classes
    errors = list(test_errors) if test_errors is not None else [None] * k
    counts = list(test_counts) if test_counts is not None else [0] * k

    o = find_record(records, THEOREM53.name, "overall")
    t = o.terms
    rc1 = lemma51_scale(ctx.unit_penult, t["radius_penult"])
    rc2 = lemma51_scale(ctx.unit_final, t["radius_final"])
    rademacher = Rademacher(penultimate=rc1, final=rc2, sum=lemma51_sum(rc1, rc2), unit_penultimate=ctx.unit_penult,
                            unit_final=ctx.unit_final)
    overall = OverallRow(bound=o.bound, train_margin_loss=t["train_margin_loss"], complexity=t["complexity"],
                         confidence=t["confidence"], vacuous=o.vacuous, rho=t["rho"], delta=o.delta, n=t["n"],
                         grid_size=t["grid_size"], rc_penult=t["rc_penult"], rc_final=t["rc_final"],
                         radius_penult=t["radius_penult"], radius_final=t["radius_final"],
                         balanced_test_error=mean_of_present(errors), train_error=train_error,
                         prior_weighted_test_error=prior_weighted(ctx, errors))
    grid = [g.to_dict() for g in THEOREM53.grid_result(ctx, o.delta).evaluated]

    n_c = ctx.class_counts
    per_class = []
    for c in range(k):
        r = find_record(records, COROLLARY54.name, class_target(c))
        rt = r.terms
        rad = None
        if r.bound is not None:
            a = lemma51_scale(ctx.class_unit_penult[c], rt["radius_penult"])
            b = lemma51_scale(ctx.class_unit_final[c], rt["radius_final"])
            rad = ClassRademacher(penultimate=a, final=b, sum=lemma51_sum(a, b))
        per_class.append(ClassRow(
            class_index=c, name=ctx.class_names[c], n_train=int(n_c[c]), n_test=int(counts[c]),
            group=ctx.class_groups[c], bound=r.bound, reason=r.reason, train_margin_loss=rt.get("train_margin_loss"),
            complexity=rt.get("complexity"), confidence=rt.get("confidence"), vacuous=r.vacuous, rho=rt.get("rho"),
            rademacher=rad, test_error=errors[c]))

    groups = {}
    for g in ctx.group_names:
        r = find_record(records, COROLLARY54.name, group_target(g))
        rt = r.terms
        groups[g] = GroupRow(num_classes=rt["num_classes"], num_classes_with_bound=rt["num_classes_with_bound"],
                             classes=list(rt["classes"]), bound=r.bound, bound_all_classes=rt["bound_all_classes"],
                             train_margin_loss=rt["train_margin_loss"], complexity=rt["complexity"],
                             confidence=rt["confidence"], vacuous=r.vacuous, reason=r.reason,
                             test_error=mean_of_present([errors[c] for c in rt["classes"]]))

    w = find_record(records, COROLLARY54.name, "worst_class")
    present = [c for c in range(k) if errors[c] is not None]
    worst_test = max(present, key=lambda c: errors[c]) if present else None
    worst = WorstClassRow(bound=w.bound, bound_class=w.terms.get("class"), bound_class_name=w.terms.get("name"),
                          test_error=None if worst_test is None else errors[worst_test], class_index=worst_test,
                          name=None if worst_test is None else ctx.class_names[worst_test])
    return Views(overall=overall, rademacher=rademacher, per_class=per_class, groups=groups, worst_class=worst,
                 overall_grid=grid)


def prior_weighted(ctx: BoundContext, errors: Sequence[float | None]) -> float | None:
    """Σ_c (n_c/n)·errors[c] with the bound sample's counts (None if a class of the sample has no error value)."""
    counts = ctx.class_counts
    if any(counts[c] > 0 and errors[c] is None for c in range(ctx.num_classes)):
        return None
    return float(sum(counts[c] / ctx.n * errors[c] for c in range(ctx.num_classes) if counts[c] > 0))


def _empirical(ctx: BoundContext, record: StatementRecord, errors: Sequence[float | None]) -> float | None:
    """The empirical value of the quantity a record bounds, from per-class error rates."""
    q = record.bounds_quantity
    present = ctx.present_classes
    if q == "prior-weighted error":
        return prior_weighted(ctx, errors)
    if q == "class error":
        return errors[int(record.target.split(":", 1)[1])]
    if q in ("balanced error", "group balanced error"):
        members = record.terms.get("classes")
        if members is None:
            members = present if q == "balanced error" else ctx.group_members(record.target.split(":", 1)[1])
        values = [errors[c] for c in members]
        return None if not values or any(v is None for v in values) else float(np.mean(values))
    if q == "worst-class error":
        values = [errors[c] for c in present if errors[c] is not None]
        return max(values) if values else None
    raise ValueError(f"record {record.name}/{record.target} bounds an unknown quantity {q!r}")


def attach_comparisons(ctx: BoundContext, records: Sequence[StatementRecord],
                       test_errors: Mapping[str, Sequence[float | None]], same_distribution: bool,
                       test_counts: Sequence[int] | None = None) -> list[StatementRecord]:
    """Every record with the empirical value of exactly the quantity it bounds, on the test split, and (given
    ``test_counts``) the two-sided 95 % interval of that population error estimate (THEORY §0).

    ``test_errors[classifier]`` are per-class test error rates of "bounded" (the classifier the uniform bounds
    and the test-set certificate are about) and of "trained" (the model as trained, which a hold-out certificate is
    about; the same unless the heads were refitted).
    """
    out = []
    for r in records:
        classifier = "trained" if r.family == "hold-out" else "bounded"
        value = _empirical(ctx, r, test_errors[classifier])
        n, low, high = (None, None, None) if test_counts is None or value is None else \
            _interval(ctx, r, test_errors[classifier], test_counts)
        out.append(replace(r, compared_with=Comparison(quantity=r.bounds_quantity, split="test", value=value,
                                                       same_distribution=same_distribution,
                                                       classifier=classifier, n=n, interval_low=low,
                                                       interval_high=high)))
    return out


def _interval(ctx: BoundContext, record: StatementRecord, errors: Sequence[float | None],
              counts: Sequence[int]) -> tuple[int, float, float]:
    """(n, low, high): the samples and the two-sided 95 % interval of the quantity ``_empirical`` computes from
    per-class rates ``errors`` on ``counts`` test images (binomial.py; proofs/population_intervals.md)."""
    q = record.bounds_quantity
    present = [c for c in ctx.present_classes if counts[c] > 0 and errors[c] is not None]
    k = {c: int(round(errors[c] * counts[c])) for c in present}
    if q == "class error":
        c = int(record.target.split(":", 1)[1])
        return counts[c], *clopper_pearson_interval(k[c], counts[c])
    if q == "worst-class error":
        return sum(counts[c] for c in present), *max_rate_interval([k[c] for c in present],
                                                                   [counts[c] for c in present])
    if q == "prior-weighted error":
        members = present
        weights = [ctx.class_counts[c] / ctx.n for c in members]
    else:
        members = record.terms.get("classes")
        if members is None:
            members = present if q == "balanced error" else ctx.group_members(record.target.split(":", 1)[1])
        members = [c for c in members if c in k]
        weights = [1.0 / len(members)] * len(members)
    total = sum(weights)
    return (sum(counts[c] for c in members),
            *mean_rate_interval([k[c] for c in members], [counts[c] for c in members], [w / total for w in weights]))


def certificate_block(records: Sequence[StatementRecord], statement: str, sample) -> CertificateBlock | None:
    """The bounds.json block of a hold-out / test-set certificate (a view of its records)."""
    rows = []
    mine = [r for r in records if r.name == statement]
    if not mine:
        return None
    for r in mine:
        t = r.terms
        errors, n = t.get("errors"), t.get("n")
        rows.append(CertificateRow(target=r.target, quantity=r.bounds_quantity, errors=errors, n=n,
                                   empirical_error=None if not n else errors / n, delta=t.get("delta_each"),
                                   bound=r.bound, method=str(t.get("method", ""))))
    return CertificateBlock(statement=statement, split=sample.split, classifier=sample.classifier,
                            same_distribution=sample.same_distribution, delta=mine[0].delta, rows=rows)


def delta_budget(ctx: BoundContext, records: Sequence[StatementRecord]) -> list[DeltaEvent]:
    """The δ-events of the records (one per statement) and the Monte Carlo certificates."""
    events: dict[str, DeltaEvent] = {}
    for r in records:
        e = events.get(r.event)
        events[r.event] = DeltaEvent(event=r.event, delta=r.delta, family=r.family,
                                     targets=1 if e is None else e.targets + 1)
    out = list(events.values())
    if ctx.confidence.n_certificates:
        out.append(DeltaEvent(event="monte-carlo certificates", delta=ctx.confidence.delta_mc, family="monte-carlo",
                              targets=ctx.confidence.n_certificates))
    return out


def class_bound_error_pairs(records: Sequence[StatementRecord], name: str) -> dict[str, tuple[float, float]]:
    """target -> (bound, compared class error) of statement ``name``'s class records that have both."""
    return {r.target: (r.bound, r.compared_with.value) for r in records
            if r.name == name and r.target.startswith("class:") and r.bound is not None
            and r.compared_with is not None and r.compared_with.value is not None}


def rank_correlations(records: Sequence[StatementRecord]) -> list[RankCorrelation]:
    """Kendall τ-b per statement between its class bounds and the compared class errors (Jiang et al. 2020)."""
    out = []
    for name in dict.fromkeys(r.name for r in records):
        pairs = list(class_bound_error_pairs(records, name).values())
        if pairs:
            tau, p_value = kendall_tau(pairs)
            out.append(RankCorrelation(statement=name, tau=tau, p_value=p_value, n=len(pairs)))
    return out
