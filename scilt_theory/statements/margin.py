"""The margin bounds of docs/THEORY.md §4 as statements: Theorem 5.3, Corollary 5.4, and their bounded-features forms.

Each evaluates the formula functions of scilt_theory/bounds.py on the shared :class:`BoundContext` at a given δ:
the smallest value over the covering points of the grid fixed before the data, every point paid for with δ/m.

Beside each value (THEORY §8): its *floor*, the value the statement takes for every classifier of the class at this
n, K, radii and grid — margins on S cannot exceed ``ctx.max_margin`` so the margin loss is at least
max(0, 1 − M_max/ρ), and the complexity and confidence terms do not depend on the classifier; and
``n_for_nonvacuous``, the bound-sample size (class proportions as now) at which the value would drop below 1 if the
margin losses stayed as they are and the complexity and confidence terms shrank like 1/√n, as they do for features
of fixed second moment (Lemma 5.2(a)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import ClassVar

import numpy as np

from scilt_theory.bounds import (
    BoundTerms,
    _group_bound,
    corollary54_all_classes,
    theorem53_bound_bounded_features,
    theorem53_grid_bound,
)
from scilt_theory.grid import BoundGrid, GridBoundResult, GridPoint
from scilt_theory.grid import grid_evaluate as _grid_evaluate
from scilt_theory.losses import ramp_loss
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement, register_statement
from scilt_theory.statements.context import BoundContext

__all__ = ["COROLLARY54", "COROLLARY54_BOUNDED", "THEOREM53", "THEOREM53_BOUNDED", "class_target", "group_target",
           "grid_floor", "n_for_nonvacuous", "scaling_curve"]

#: keys of BoundTerms that the record carries itself (bound, vacuous, delta) or that the record's theory names
_RECORD_FIELDS = ("bound", "vacuous", "delta", "statement")


def terms_of(t: BoundTerms) -> dict:
    """The terms of a margin bound as a record's ``terms`` (train_margin_loss, complexity, confidence, rho, ...)."""
    return {k: v for k, v in t.to_dict().items() if k not in _RECORD_FIELDS}


def class_target(c: int) -> str:
    return f"class:{c}"


def group_target(g: str) -> str:
    return f"group:{g}"


def grid_floor(ctx: BoundContext, evaluated: Sequence[BoundTerms]) -> float:
    """The statement's value for any classifier of its class: min over the grid of
    max(0, 1 − M_max/ρ) + complexity + confidence (THEORY §8, floors)."""
    return min(max(0.0, 1.0 - ctx.max_margin(t.radius_penult, t.radius_final) / t.rho) + t.complexity + t.confidence
               for t in evaluated)


def scaling_curve(ctx: BoundContext, evaluated: Sequence[BoundTerms]) -> list[list[float]]:
    """Per grid point [ρ, train margin loss, complexity + confidence, margin-loss floor max(0, 1 − M_max/ρ)] at the
    current n: the value at size t·n is loss + (complexity + confidence)/√t (the assumption of
    :func:`n_for_nonvacuous`), the floor's floor part + the same. Stored for the bound-vs-n figure."""
    return [[t.rho, t.train_margin_loss, t.complexity + t.confidence,
             max(0.0, 1.0 - ctx.max_margin(t.radius_penult, t.radius_final) / t.rho)] for t in evaluated]


def n_for_nonvacuous(curves: Sequence[Sequence[BoundTerms]], n: int, aggregate: Callable[[list[float]], float]
                     ) -> float | None:
    """Smallest bound-sample size at which ``aggregate`` over the curves of min-over-grid values drops to 1.

    Each curve is one class's (or the sample's) grid evaluation at the current size n; at size t·n every point is
    train_margin_loss + (complexity + confidence)/√t (margin losses fixed, the other terms ∝ 1/√n). None when the
    margin losses alone keep the value at or above 1.
    """
    arrays = [(np.array([p.train_margin_loss for p in curve]), np.array([p.complexity + p.confidence for p in curve]))
              for curve in curves]

    def value(t: float) -> float:
        return aggregate([float(np.min(loss + terms / math.sqrt(t))) for loss, terms in arrays])

    if aggregate([float(loss.min()) for loss, _ in arrays]) >= 1.0:
        return None
    lo, hi = 1e-9, 1.0
    while value(hi) > 1.0:
        hi *= 4.0
        if hi > 1e15:
            return None
    if value(lo) <= 1.0:
        return lo * n
    for _ in range(200):  # value(t) is decreasing in t
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if value(mid) > 1.0 else (lo, mid)
    return hi * n


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


class Theorem53(Statement):
    """THEORY §4, Theorem 5.3: the whole sample, best covering grid point at δ/m. Read conditionally on the labels
    it bounds the prior-weighted error (THEORY §4, "What it bounds")."""

    name = "theorem53"
    theory = "THEORY §4, Theorem 5.3"
    #: the class-wise contraction in place of Lemma 5.2(b) (statements/classwise.py sets it)
    classwise: ClassVar[bool] = False

    def grid_radii(self, ctx: BoundContext) -> tuple[BoundGrid, float, float]:
        """The grid fixed before the data, and the radii (or the trained norms a grid radius must cover)."""
        return ctx.grid, ctx.radius_penult, ctx.radius_final

    def grid_result(self, ctx: BoundContext, delta: float) -> GridBoundResult:
        grid, b1, b2 = self.grid_radii(ctx)
        label = ctx.classwise_label_unit(np.full(ctx.n, 1.0 / ctx.n)) if self.classwise else None
        return theorem53_grid_bound(ctx.margins, ctx.unit_penult.upper, ctx.unit_final.upper, delta, grid, b1, b2,
                                    label_unit=label)

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        res = self.grid_result(ctx, delta)
        best = res.best
        terms = {**terms_of(best), "curve": scaling_curve(ctx, res.evaluated)}
        return [self.record(ctx, "overall", best.bound, delta, terms, quantity="prior-weighted error",
                            floor=grid_floor(ctx, res.evaluated),
                            n_for_nonvacuous=n_for_nonvacuous([res.evaluated], ctx.n, max))]


def class_family_records(statement: Statement, ctx: BoundContext, delta: float,
                         per_class: Sequence[tuple[int, BoundTerms | None, Sequence[BoundTerms], str | None]]
                         ) -> list[StatementRecord]:
    """Records of a statement that holds for every class at once: each class, the balanced error (mean over the
    classes with a bound), each group (mean over its classes with a bound) and the worst class (max)."""
    records = []
    bounded = {c: (t, ev) for c, t, ev, _ in per_class if t is not None}
    for c, t, ev, reason in per_class:
        if t is None:
            records.append(statement.record(ctx, class_target(c), None, delta, reason=reason, quantity="class error"))
            continue
        records.append(statement.record(ctx, class_target(c), t.bound, delta, terms_of(t), quantity="class error",
                                        floor=grid_floor(ctx, ev),
                                        n_for_nonvacuous=n_for_nonvacuous([ev], ctx.n, max)))

    def aggregate(target: str, members: list[int], how: Callable[[list[float]], float], quantity: str,
                  extra: dict | None = None) -> StatementRecord:
        members = [c for c in members if c in bounded]
        if not members:
            return statement.record(ctx, target, None, delta, reason="no class of this target has training samples",
                                    quantity=quantity)
        terms = {"classes": members, **(extra or {})}
        return statement.record(ctx, target, how([bounded[c][0].bound for c in members]), delta, terms,
                                quantity=quantity, floor=how([grid_floor(ctx, bounded[c][1]) for c in members]),
                                n_for_nonvacuous=n_for_nonvacuous([bounded[c][1] for c in members], ctx.n, how))

    records.append(aggregate("balanced", list(bounded), _mean, "balanced error"))
    for g in ctx.group_names:
        records.append(aggregate(group_target(g), ctx.group_members(g), _mean, "group balanced error"))
    worst = aggregate("worst_class", list(bounded), max, "worst-class error")
    if worst.bound is not None:
        c = max(bounded, key=lambda k: bounded[k][0].bound)  # the first class attaining the max, as max() picks
        worst = replace(worst, terms={**worst.terms, "class": c, "name": ctx.class_names[c]})
    records.append(worst)
    return records


def per_class_grid_records(statement: Statement, ctx: BoundContext, delta: float,
                           class_grid: Callable[[int], GridBoundResult]) -> list[StatementRecord]:
    """:func:`class_family_records` of a statement whose class-c value is ``class_grid(c)``'s best grid point
    (classes without training samples get no value)."""
    per_class = []
    for c in range(ctx.num_classes):
        if ctx.class_counts[c] == 0:
            per_class.append((c, None, (), "no training samples"))
            continue
        res = class_grid(c)
        per_class.append((c, res.best, res.evaluated, None))
    return class_family_records(statement, ctx, delta, per_class)


class Corollary54(Statement):
    """THEORY §4, Corollary 5.4: every class with n_c >= 1 at δ/(K m); the balanced error, the group means and the
    worst class follow from the same event."""

    name = "corollary54"
    theory = "THEORY §4, Corollary 5.4"
    grid_radii = Theorem53.grid_radii
    classwise: ClassVar[bool] = False

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        grid, b1, b2 = self.grid_radii(ctx)
        res = corollary54_all_classes(
            ctx.margins, ctx.labels, ctx.class_unit_penult, ctx.class_unit_final, num_classes=ctx.num_classes,
            delta=delta, grid=grid, radius_penult=b1, radius_final=b2, class_names=ctx.class_names,
            class_groups=ctx.class_groups, classwise=self.classwise)
        records = class_family_records(self, ctx, delta, [(pc.class_index, pc.terms, pc.evaluated, pc.reason)
                                                          for pc in res.per_class])
        # the group view of bounds.json also shows the mean terms and the bound counting a class without samples as 1
        for i, r in enumerate(records):
            if r.target.startswith("group:"):
                g = r.target.split(":", 1)[1]
                gb = _group_bound(g, [pc for pc in res.per_class if pc.group == g])
                terms = {**r.terms, "num_classes": gb.num_classes, "num_classes_with_bound": gb.num_classes_with_bound,
                         "classes": list(gb.classes), "bound_all_classes": gb.bound_all_classes,
                         "train_margin_loss": gb.train_margin_loss, "complexity": gb.complexity,
                         "confidence": gb.confidence}
                records[i] = replace(r, terms=terms, reason=gb.reason)
        return records


def _bounded_grid(ctx: BoundContext, margins: np.ndarray, n: int, union: int, delta: float,
                  grid_radii: tuple[BoundGrid, float, float], class_sq_weights: np.ndarray | None = None
                  ) -> GridBoundResult:
    r = float(ctx.feature_norm_bound)
    grid, b1, b2 = grid_radii

    def at(p: GridPoint) -> BoundTerms:
        return theorem53_bound_bounded_features(
            float(np.mean(ramp_loss(margins, p.rho))), n, p.rho, delta, radius_penult=p.radius_penult,
            radius_final=p.radius_final, num_outputs=ctx.num_classes, feature_norm_bound=r, norm=ctx.norm,
            grid_size=grid.size, num_classes=union, class_sq_weights=class_sq_weights)

    return _grid_evaluate(at, grid, b1, b2)


class Theorem53BoundedFeatures(Statement):
    """proofs/theorem_5_3_tighter.md: Theorem 5.3 with the expected complexity when every ||ψ(x)|| <= r."""

    name = "theorem53_bounded_features"
    theory = "THEORY §8, tighter forms (bounded features)"
    grid_radii = Theorem53.grid_radii
    classwise: ClassVar[bool] = False

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.feature_norm_bound is not None

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        sq = ctx.class_sq_weights(np.full(ctx.n, 1.0 / ctx.n)) if self.classwise else None
        res = _bounded_grid(ctx, ctx.margins, ctx.n, 1, delta, self.grid_radii(ctx), sq)
        return [self.record(ctx, "overall", res.best.bound, delta, terms_of(res.best),
                            quantity="prior-weighted error", floor=grid_floor(ctx, res.evaluated),
                            n_for_nonvacuous=n_for_nonvacuous([res.evaluated], ctx.n, max))]


class Corollary54BoundedFeatures(Statement):
    """proofs/theorem_5_3_tighter.md: Corollary 5.4 with the expected complexity when every ||ψ(x)|| <= r."""

    name = "corollary54_bounded_features"
    theory = "THEORY §8, tighter forms (bounded features)"
    grid_radii = Theorem53.grid_radii
    classwise: ClassVar[bool] = False

    def class_sq_weights(self, ctx: BoundContext, c: int) -> np.ndarray | None:
        """S_c with w_i = 1/n_c: a = 1/n_c at c, 0 elsewhere (class-wise contraction only)."""
        if not self.classwise:
            return None
        return np.eye(ctx.num_classes)[c] / float(ctx.class_counts[c])

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.feature_norm_bound is not None

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        return per_class_grid_records(self, ctx, delta, lambda c: _bounded_grid(
            ctx, ctx.class_margins(c), int(ctx.class_counts[c]), ctx.num_classes, delta, self.grid_radii(ctx),
            self.class_sq_weights(ctx, c)))


THEOREM53 = register_statement(Theorem53())
COROLLARY54 = register_statement(Corollary54())
THEOREM53_BOUNDED = register_statement(Theorem53BoundedFeatures())
COROLLARY54_BOUNDED = register_statement(Corollary54BoundedFeatures())
