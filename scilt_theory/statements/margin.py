"""The margin bounds of docs/THEORY.md §4 as statements: Theorem 5.3, Corollary 5.4, and their bounded-features forms.

Each evaluates the formula functions of scilt_theory/bounds.py on the shared :class:`BoundContext` at a given δ:
the smallest value over the covering points of the grid fixed before the data, every point paid for with δ/m.
"""

from __future__ import annotations

import numpy as np

from scilt_theory.bounds import (BoundTerms, GridBoundResult, GridPoint, _grid_evaluate, _group_bound,
                                 corollary54_all_classes, theorem53_bound_bounded_features, theorem53_grid_bound)
from scilt_theory.losses import ramp_loss
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement, register_statement
from scilt_theory.statements.context import BoundContext

__all__ = ["COROLLARY54", "COROLLARY54_BOUNDED", "THEOREM53", "THEOREM53_BOUNDED", "class_target", "group_target"]

#: keys of BoundTerms that the record carries itself (bound, vacuous, delta) or that the record's theory names
_RECORD_FIELDS = ("bound", "vacuous", "delta", "statement")


def terms_of(t: BoundTerms) -> dict:
    """The terms of a margin bound as a record's ``terms`` (train_margin_loss, complexity, confidence, rho, ...)."""
    return {k: v for k, v in t.to_dict().items() if k not in _RECORD_FIELDS}


def class_target(c: int) -> str:
    return f"class:{c}"


def group_target(g: str) -> str:
    return f"group:{g}"


class Theorem53(Statement):
    """THEORY §4, Theorem 5.3: the whole sample, best covering grid point at δ/m."""

    name = "theorem53"
    theory = "THEORY §4, Theorem 5.3"

    def grid_result(self, ctx: BoundContext, delta: float) -> GridBoundResult:
        return theorem53_grid_bound(ctx.margins, ctx.unit_penult.upper, ctx.unit_final.upper, delta, ctx.grid,
                                    ctx.radius_penult, ctx.radius_final)

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        best = self.grid_result(ctx, delta).best
        return [self.record(ctx, "overall", best.bound, delta, terms_of(best))]


class Corollary54(Statement):
    """THEORY §4, Corollary 5.4: every class with n_c >= 1 at δ/(K m), the group means and the worst class."""

    name = "corollary54"
    theory = "THEORY §4, Corollary 5.4"

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        res = corollary54_all_classes(
            ctx.margins, ctx.labels, ctx.class_unit_penult, ctx.class_unit_final, num_classes=ctx.num_classes,
            delta=delta, grid=ctx.grid, radius_penult=ctx.radius_penult, radius_final=ctx.radius_final,
            class_names=ctx.class_names, class_groups=ctx.class_groups)
        records = [self.record(ctx, class_target(pc.class_index), pc.bound, delta,
                               None if pc.terms is None else terms_of(pc.terms), reason=pc.reason)
                   for pc in res.per_class]
        for g in ctx.group_names:
            gb = _group_bound(g, [pc for pc in res.per_class if pc.group == g])
            terms = {"num_classes": gb.num_classes, "num_classes_with_bound": gb.num_classes_with_bound,
                     "classes": list(gb.classes), "bound_all_classes": gb.bound_all_classes,
                     "train_margin_loss": gb.train_margin_loss, "complexity": gb.complexity,
                     "confidence": gb.confidence}
            records.append(self.record(ctx, group_target(g), gb.bound, delta, terms, reason=gb.reason))
        worst = res.worst_class
        records.append(self.record(ctx, "worst_class", None if worst is None else worst.bound, delta,
                                   {} if worst is None else {"class": worst.class_index, "name": worst.name},
                                   reason="no class has training samples" if worst is None else None))
        return records


def _bounded_grid(ctx: BoundContext, margins: np.ndarray, n: int, union: int, delta: float) -> BoundTerms:
    r = float(ctx.feature_norm_bound)

    def at(p: GridPoint) -> BoundTerms:
        return theorem53_bound_bounded_features(
            float(np.mean(ramp_loss(margins, p.rho))), n, p.rho, delta, radius_penult=p.radius_penult,
            radius_final=p.radius_final, num_outputs=ctx.num_classes, feature_norm_bound=r, norm=ctx.norm,
            grid_size=ctx.grid.size, num_classes=union)

    return _grid_evaluate(at, ctx.grid, ctx.radius_penult, ctx.radius_final).best


class Theorem53BoundedFeatures(Statement):
    """proofs/theorem_5_3_tighter.md: Theorem 5.3 with the expected complexity when every ||ψ(x)|| <= r."""

    name = "theorem53_bounded_features"
    theory = "THEORY §8, tighter forms (bounded features)"

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.feature_norm_bound is not None

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        best = _bounded_grid(ctx, ctx.margins, ctx.n, 1, delta)
        return [self.record(ctx, "overall", best.bound, delta, terms_of(best))]


class Corollary54BoundedFeatures(Statement):
    """proofs/theorem_5_3_tighter.md: Corollary 5.4 with the expected complexity when every ||ψ(x)|| <= r."""

    name = "corollary54_bounded_features"
    theory = "THEORY §8, tighter forms (bounded features)"

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.feature_norm_bound is not None

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        out = []
        counts = ctx.class_counts
        for c in range(ctx.num_classes):
            if counts[c] == 0:
                out.append(self.record(ctx, class_target(c), None, delta, reason="no training samples"))
                continue
            best = _bounded_grid(ctx, ctx.class_margins(c), int(counts[c]), ctx.num_classes, delta)
            out.append(self.record(ctx, class_target(c), best.bound, delta, terms_of(best)))
        return out


THEOREM53 = register_statement(Theorem53())
COROLLARY54 = register_statement(Corollary54())
THEOREM53_BOUNDED = register_statement(Theorem53BoundedFeatures())
COROLLARY54_BOUNDED = register_statement(Corollary54BoundedFeatures())
