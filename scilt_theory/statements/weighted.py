"""The class-weighted margin bound as a statement: the balanced error and each group's balanced error (THEORY §8).

Conditionally on the labels, with w_i = 1/(|C|·n_{y_i}) on the rows of a set C of classes, Σ_i w_i·1{error} has
expectation (1/|C|)·Σ_{c∈C} err_c, the balanced error of C. Bounded differences w_i, symmetrisation with ghost points
of the same labels, Maurer's contraction with per-point Lipschitz constants w_i·√2/ρ and Lemma 5.1 give
(proofs/weighted_margin_bound.md), for the T targets (balanced + every group) and m grid points at once:

    balanced error of C <= mean_{c∈C} R̂_{S_c,ρ}(f) + (4/ρ)[B₁ R^w₁ + B₂ R^w₂] + 3 sqrt(ln(2Tm/δ) Σ_i w_i² / 2),

R^w the weighted unit complexities of the context (n'·R̂ᵛ on the features w_iψ_i). It is at most the mean of the
classes' Corollary 5.4 bounds term by term except the margin loss (a common ρ instead of one per class).
"""

from __future__ import annotations

import numpy as np

from scilt_theory.bounds import BoundTerms, GridPoint, _grid_evaluate, weighted_margin_bound
from scilt_theory.losses import ramp_loss
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement, register_statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.margin import grid_floor, n_for_nonvacuous, scaling_curve, terms_of

__all__ = ["WEIGHTED_MARGIN"]


class WeightedMargin(Statement):
    """THEORY §8: the class-weighted margin bound for the balanced error and every group's balanced error."""

    name = "weighted_margin"
    theory = "THEORY §8, class-weighted margin bound"
    needs = frozenset({"weighted"})

    def grid_radii(self, ctx: BoundContext):
        return ctx.grid, ctx.radius_penult, ctx.radius_final

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        grid, b1, b2 = self.grid_radii(ctx)
        targets = ctx.weighted_targets()
        records = []
        for target, w in targets.items():
            rows = w > 0
            r1, r2 = ctx.weighted_unit[target]
            sum_sq = float(np.sum(w[rows] ** 2))

            def at(p: GridPoint, rows=rows, w=w, r1=r1, r2=r2, sum_sq=sum_sq) -> BoundTerms:
                loss = float(np.sum(w[rows] * ramp_loss(ctx.margins[rows], p.rho)))
                return weighted_margin_bound(min(1.0, loss), p.radius_penult * r1.upper, p.radius_final * r2.upper,
                                             sum_sq, p.rho, delta, grid.size, len(targets), p.radius_penult,
                                             p.radius_final)

            res = _grid_evaluate(at, grid, b1, b2)
            members = sorted(int(c) for c in np.unique(ctx.labels[rows]))
            quantity = "balanced error" if target == "balanced" else "group balanced error"
            terms = {**terms_of(res.best), "sum_sq_weights": sum_sq, "classes": members, "num_targets": len(targets),
                     "curve": scaling_curve(ctx, res.evaluated)}
            records.append(self.record(ctx, target, res.best.bound, delta, terms, quantity=quantity,
                                       floor=grid_floor(ctx, res.evaluated),
                                       n_for_nonvacuous=n_for_nonvacuous([res.evaluated], ctx.n, max)))
        return records


WEIGHTED_MARGIN = register_statement(WeightedMargin())
