"""Bound statements as registered components (docs/THEORY.md §4, §8), and the fused model's bounds built from them.

``fused_model_bounds`` = validate → context (:func:`build_context`: margins, estimators, unit complexities, the grid,
the δ accounting, computed once) → evaluate the selected statements (:data:`STATEMENTS`) → views.

The registry is the declared tuple :data:`REGISTERED` below, in report order. Adding a margin statement: one row of
statements/margin.MARGIN_TABLE (and its formula there if the combination is new), its proof in proofs/ and its tests;
it joins ``tightest_uniform`` only if added to that statement's members here. Another family: a :class:`Statement`
subclass in a module of this package, an instance in :data:`REGISTERED`, its proof and its tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import (
    STATEMENTS,
    Statement,
    evaluate_statements,
    get_statement,
    headline_statements,
    register_statement,
    select_statements,
)
from scilt_theory.statements.certificates import HOLDOUT_CERTIFICATE, TESTSET_CERTIFICATE
from scilt_theory.statements.context import VALIDITY, BoundContext, build_context
from scilt_theory.statements.margin import MARGIN, MARGIN_STATEMENTS
from scilt_theory.statements.pacbayes import PAC_BAYES
from scilt_theory.statements.tighter import TightestUniform
from scilt_theory.statements.views import Views, build_views

#: the minimum over the margin statements of the table, each at δ/J (J: the members the configuration sets up)
TIGHTEST_UNIFORM = TightestUniform(members=MARGIN_STATEMENTS)
#: every registered statement, in report order (bounds.json, report.md)
REGISTERED = (*(MARGIN[n] for n in ("theorem53", "corollary54", "theorem53_bounded_features",
                                    "corollary54_bounded_features")),
              HOLDOUT_CERTIFICATE, TESTSET_CERTIFICATE, *MARGIN_STATEMENTS[4:15], PAC_BAYES, *MARGIN_STATEMENTS[15:],
              TIGHTEST_UNIFORM)
for _statement in REGISTERED:
    register_statement(_statement)

__all__ = ["REGISTERED", "STATEMENTS", "TIGHTEST_UNIFORM", "VALIDITY", "BoundContext", "FusedBounds", "Statement",
           "Views", "build_context", "build_views", "evaluate_statements", "fused_model_bounds", "get_statement",
           "headline_statements", "register_statement"]


@dataclass(frozen=True)
class FusedBounds:
    """The statements' records for one sample of the fused model's features, with the context they share."""

    context: BoundContext
    records: tuple[StatementRecord, ...]

    def record(self, name: str, target: str = "overall") -> StatementRecord:
        for r in self.records:
            if r.name == name and r.target == target:
                return r
        raise KeyError(f"no {name} record for {target!r}")

    def views(self, **empirical: Any) -> Views:
        """The overall / per-class / group / worst-class views (``empirical``: see :func:`build_views`)."""
        return build_views(self.context, self.records, **empirical)


def fused_model_bounds(psi_penult: Any, psi_final: Any, scores: Any, labels: Any, *,
                       statements: Iterable[str] | None = None, **context: Any) -> FusedBounds:
    """Theorem 5.3, Corollary 5.4 and every other selected statement for a trained fused model (THEORY §1, §4, §5).

    ``context`` are the keyword arguments of :func:`build_context` (num_classes, radii, norm, grid, δ, estimator,
    draws, δ_mc, seed, class names and groups, feature_norm_bound, validity, device). ``statements``: names of
    registered statements (default: every default statement that applies). Each statement holds on its own w.p.
    >= 1 - delta - delta_mc.
    """
    chosen = select_statements(statements)
    needs = frozenset().union(*(s.needs for s in chosen))
    ctx = build_context(psi_penult, psi_final, scores, labels, needs=needs, **context)
    return FusedBounds(context=ctx, records=tuple(evaluate_statements(ctx, [s.name for s in chosen])))
