"""Bound statements as registered components (docs/THEORY.md §4, §8), and the fused model's bounds built from them.

``fused_model_bounds`` = validate → context (:func:`build_context`: margins, estimators, unit complexities, the grid,
the δ accounting, computed once) → evaluate the selected statements (:data:`STATEMENTS`) → views. Adding a statement:
subclass :class:`Statement` in a module of this package, register an instance, import the module below, write its
proof in proofs/ and its tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scilt_theory.schema import StatementRecord
from scilt_theory.statements import certificates as _certificates  # noqa: F401  (registers the statements)
from scilt_theory.statements import classwise as _classwise  # noqa: F401
from scilt_theory.statements import margin as _margin  # noqa: F401
from scilt_theory.statements import pacbayes as _pacbayes  # noqa: F401
from scilt_theory.statements import tighter as _tighter  # noqa: F401  (last: tightest_uniform reads the others)
from scilt_theory.statements import weighted as _weighted  # noqa: F401
from scilt_theory.statements.base import (
    STATEMENTS,
    Statement,
    evaluate_statements,
    get_statement,
    register_statement,
    select_statements,
)
from scilt_theory.statements.context import VALIDITY, BoundContext, build_context
from scilt_theory.statements.views import Views, build_views

__all__ = ["STATEMENTS", "VALIDITY", "BoundContext", "FusedBounds", "Statement", "Views", "build_context",
           "build_views", "evaluate_statements", "fused_model_bounds", "get_statement", "register_statement"]


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
