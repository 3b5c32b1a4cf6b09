"""Tighter proved uniform statements (THEORY §8; proofs/theorem_5_3_tighter.md, proofs/data_dependent_radii.md), and
the tightest of all uniform statements with its δ split.

* Data-dependent radii: the classes F_{N-1}(B₁) + F_N(B₂) for the radii on a geometric grid fixed before the data
  (from the class radii down to 1/8 of them in steps of 2^(1/4): the worst case (2s, s) of SciLT is one point),
  every (ρ, B₁, B₂) paid for with δ/m; the smallest grid radii covering the trained heads' largest row norms
  (‖u_c‖ ≤ s(1 + α), ‖v_c‖ = s(1 − α)) are used. Variants of Theorem 5.3, Corollary 5.4, the class-weighted
  statement and the bounded-features forms.
* The coupled class H_s (one W1, W2, α) in place of the Lemma 5.1 sum, its complexity computed on the bound sample
  itself (and on each S_c), never on a subsample (the caveat of proofs/theorem_5_3_tighter.md, A).
* ``tightest_uniform``: for every target, the smallest value of the J uniform statements that apply, each evaluated
  at δ/J, so that the minimum holds w.p. >= 1 − δ (− δ_mc). The record says which statement attained it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scilt_theory.bounds import BoundTerms, coupled_margin_bound
from scilt_theory.grid import BoundGrid, GridPoint
from scilt_theory.grid import grid_evaluate as _grid_evaluate
from scilt_theory.losses import ramp_loss
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import STATEMENTS, Statement, register_statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.margin import (
    Corollary54,
    Corollary54BoundedFeatures,
    Theorem53,
    Theorem53BoundedFeatures,
    grid_floor,
    n_for_nonvacuous,
    per_class_grid_records,
    scaling_curve,
    terms_of,
)
from scilt_theory.statements.radii import RADII_RATIO, RADII_SPAN, DataRadii, data_radii_grid, trained_radii
from scilt_theory.statements.weighted import WeightedMargin, WeightedMarginBoundedFeatures

__all__ = ["RADII_RATIO", "RADII_SPAN", "TIGHTEST_UNIFORM", "data_radii_grid", "trained_radii"]


class Theorem53DataRadii(DataRadii, Theorem53):
    """Theorem 5.3 on the data-dependent radii grid."""

    name = "theorem53_data_radii"


class Corollary54DataRadii(DataRadii, Corollary54):
    """Corollary 5.4 on the data-dependent radii grid."""

    name = "corollary54_data_radii"


class WeightedMarginDataRadii(DataRadii, WeightedMargin):
    """The class-weighted statement on the data-dependent radii grid."""

    name = "weighted_margin_data_radii"


class WeightedMarginBoundedDataRadii(DataRadii, WeightedMarginBoundedFeatures):
    """The class-weighted bounded-features form on the data-dependent radii grid."""

    name = "weighted_margin_bounded_features_data_radii"


class Theorem53BoundedDataRadii(DataRadii, Theorem53BoundedFeatures):
    """Theorem 5.3's bounded-features form on the data-dependent radii grid."""

    name = "theorem53_bounded_features_data_radii"


class Corollary54BoundedDataRadii(DataRadii, Corollary54BoundedFeatures):
    """Corollary 5.4's bounded-features form on the data-dependent radii grid."""

    name = "corollary54_bounded_features_data_radii"


class _Coupled:
    """Mixin: the coupled class H_s, its complexity taken on the bound sample (and each S_c) itself."""

    theory: ClassVar[str] = "THEORY §8, tighter forms (coupled class)"
    needs: ClassVar[frozenset[str]] = frozenset({"coupled"})

    def applies(self, ctx: BoundContext) -> bool:
        return "overall" in ctx.coupled_unit and ctx.coupled_scale is not None

    def coupled_grid(self, ctx: BoundContext, margins: np.ndarray, key: str, n: int, union: int, delta: float):
        rc = ctx.coupled_unit[key].upper

        def at(p: GridPoint) -> BoundTerms:
            return coupled_margin_bound(float(np.mean(ramp_loss(margins, p.rho))), rc, n, p.rho, delta,
                                        scale=ctx.coupled_scale, grid_size=ctx.grid.size, num_classes=union)

        # H_s has its radii fixed by s: the grid's ρ axis only
        return _grid_evaluate(at, BoundGrid(rhos=ctx.grid.rhos), 0.0, 0.0)


class Theorem53Coupled(_Coupled, Statement):
    """Theorem 5.3 for the coupled SciLT class H_s (proofs/theorem_5_3_tighter.md, A)."""

    name = "theorem53_coupled"

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        res = self.coupled_grid(ctx, ctx.margins, "overall", ctx.n, 1, delta)
        terms = {**terms_of(res.best), "curve": scaling_curve(ctx, res.evaluated)}
        return [self.record(ctx, "overall", res.best.bound, delta, terms, quantity="prior-weighted error",
                            floor=grid_floor(ctx, res.evaluated),
                            n_for_nonvacuous=n_for_nonvacuous([res.evaluated], ctx.n, max))]


class Corollary54Coupled(_Coupled, Statement):
    """Corollary 5.4 for the coupled SciLT class H_s, every class at δ/(K m)."""

    name = "corollary54_coupled"

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        return per_class_grid_records(self, ctx, delta, lambda c: self.coupled_grid(
            ctx, ctx.class_margins(c), f"class:{c}", int(ctx.class_counts[c]), ctx.num_classes, delta))


class TightestUniform(Statement):
    """For every target, the smallest value of the J uniform statements that apply, each at δ/J (THEORY §8)."""

    name = "tightest_uniform"
    theory = "THEORY §8, the minimum over statements (δ split)"

    @property
    def needs(self) -> frozenset[str]:  # every member's needs
        return frozenset().union(*(s.needs for s in self.members()))

    def members(self) -> list[Statement]:
        return [s for s in STATEMENTS.values() if s.family == "uniform" and s is not self]

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        members = [s for s in self.members() if s.applies(ctx)]
        share = delta / len(members)
        best: dict[str, StatementRecord] = {}
        floors: dict[str, float] = {}
        needed: dict[str, float] = {}
        order: list[str] = []
        for statement in members:
            for r in statement.evaluate(ctx, share):
                if r.bound is None:
                    continue
                if r.target not in best:
                    order.append(r.target)
                if r.target not in best or r.bound < best[r.target].bound:
                    best[r.target] = r
                if r.floor is not None:
                    floors[r.target] = min(floors.get(r.target, np.inf), r.floor)
                if r.n_for_nonvacuous is not None:
                    needed[r.target] = min(needed.get(r.target, np.inf), r.n_for_nonvacuous)
        out = []
        for target in order:
            r = best[target]
            terms = {**{k: v for k, v in r.terms.items() if k != "curve"}, "attained_by": r.name,
                     "members": [s.name for s in members], "delta_each": share}
            out.append(self.record(ctx, target, r.bound, delta, terms, quantity=r.bounds_quantity,
                                   floor=floors.get(target), n_for_nonvacuous=needed.get(target)))
        return out


for _statement in (Theorem53DataRadii(), Corollary54DataRadii(), WeightedMarginDataRadii(),
                   WeightedMarginBoundedDataRadii(), Theorem53BoundedDataRadii(),
                   Corollary54BoundedDataRadii(), Theorem53Coupled(), Corollary54Coupled()):
    register_statement(_statement)
TIGHTEST_UNIFORM = register_statement(TightestUniform())
