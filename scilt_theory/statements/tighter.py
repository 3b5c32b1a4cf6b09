"""The tightest of the uniform statements, with its δ split (THEORY §8; proofs/data_dependent_radii.md, §2).

``tightest_uniform``: for every target, the smallest value of its J member statements, each evaluated at δ/J, so
that the minimum holds w.p. >= 1 − δ (− δ_mc). The members are an explicit tuple fixed when the statement is
declared (statements/__init__.py: the margin table), and J counts the members the configuration sets up (a
feature-norm bound given, the heads given, a SciLT-form scale, the row norm) — never a look at the trained norms,
and never the registry, so registering another statement does not change δ/J. A configured member whose grid does
not cover the trained heads has no value but still pays its share. The record says which statement attained it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.margin import MarginStatement

__all__ = ["TightestUniform"]


class TightestUniform(Statement):
    """For every target, the smallest value of the J configured members, each at δ/J (THEORY §8)."""

    name = "tightest_uniform"
    theory = "THEORY §8, the minimum over statements (δ split)"
    headline = 3
    label = "tightest uniform (δ/J each)"

    def __init__(self, members: Sequence[MarginStatement]):
        if not members or any(m.family != "uniform" for m in members):
            raise ValueError("tightest_uniform needs at least one member, every one a uniform statement")
        self.members = tuple(members)
        self.needs = frozenset().union(*(m.needs for m in self.members))

    def configured_members(self, ctx: BoundContext) -> list[MarginStatement]:
        """The members J counts: those whose inputs the configuration gives."""
        return [m for m in self.members if m.configured(ctx)]

    def applies(self, ctx: BoundContext) -> bool:
        return bool(self.configured_members(ctx))

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        members = self.configured_members(ctx)
        share = delta / len(members)
        best: dict[str, StatementRecord] = {}
        floors: dict[str, float] = {}
        needed: dict[str, float] = {}
        order: list[str] = []
        for statement in members:
            if not statement.applies(ctx):  # its grid does not cover the trained heads: no value, its share is spent
                continue
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
