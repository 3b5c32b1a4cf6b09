"""A bound statement as a small registered component, and the registry.

A :class:`Statement` has a name, the place in docs/THEORY.md where it is stated, the validity regimes in which it is
a certificate, and ``evaluate(context, delta) -> list[StatementRecord]``: one record per target it bounds (overall,
each class, each group, the worst class), and ``headline`` / ``label`` saying where the report shows it. The
registry is filled from the declared tuple ``statements.REGISTERED`` (a margin statement is a row of
statements/margin.MARGIN_TABLE); the pipeline, bounds.json, report.md and the figures pick a statement up through the
registry and the records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from scilt_theory.schema import StatementRecord
from scilt_theory.statements.context import BoundContext

__all__ = ["STATEMENTS", "Statement", "evaluate_statements", "get_statement", "headline_statements",
           "register_statement", "select_statements"]

#: Validity regimes in which a uniform-convergence statement over the features' hypothesis class is a certificate.
FEATURES_FIXED = frozenset({"certified", "fixed-features"})


class Statement:
    """One bound statement of docs/THEORY.md (subclass it and register an instance)."""

    name: ClassVar[str]
    theory: ClassVar[str]
    #: validity regimes (BoundContext.validity) in which the statement's values are certificates
    certificate_in: ClassVar[frozenset[str]] = FEATURES_FIXED
    #: evaluated by default (False for statements that need inputs the context may lack)
    default: ClassVar[bool] = True

    def applies(self, ctx: BoundContext) -> bool:
        """Whether the statement can be evaluated on this context (e.g. it needs a feature-norm bound)."""
        return True

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:  # pragma: no cover - interface
        raise NotImplementedError

    #: its place in the report's headline table (None: only under "All statements")
    headline: int | None = None
    #: its legend label in the statements figure (None: not drawn there)
    label: str | None = None

    #: the shared quantities it reads beyond the default ones (build_context ``needs``)
    needs: ClassVar[frozenset[str]] = frozenset()
    #: uniform | hold-out | test-set | pac-bayes
    family: ClassVar[str] = "uniform"

    # helpers for subclasses
    def record(self, ctx: BoundContext, target: str, bound: float | None, delta: float, terms: dict | None = None,
               reason: str | None = None, *, quantity: str, floor: float | None = None,
               n_for_nonvacuous: float | None = None, event: str | None = None) -> StatementRecord:
        return StatementRecord(name=self.name, theory=self.theory, target=target,
                               certificate=ctx.validity in self.certificate_in,
                               bound=None if bound is None else float(bound),
                               vacuous=None if bound is None else bool(bound > 1.0), delta=float(delta),
                               terms=dict(terms or {}), reason=reason, bounds_quantity=quantity, family=self.family,
                               event=event or self.name, floor=None if floor is None else float(floor),
                               vacuous_by_construction=None if floor is None else bool(floor >= 1.0),
                               n_for_nonvacuous=None if n_for_nonvacuous is None else float(n_for_nonvacuous))


STATEMENTS: dict[str, Statement] = {}


def register_statement(statement: Statement) -> Statement:
    """Add ``statement`` to :data:`STATEMENTS` (a name may be registered once)."""
    if not getattr(statement, "name", None) or not getattr(statement, "theory", None):
        raise ValueError("a statement needs a name and a THEORY reference")
    if statement.name in STATEMENTS:
        raise ValueError(f"a statement named {statement.name!r} is already registered")
    STATEMENTS[statement.name] = statement
    return statement


def headline_statements() -> tuple[Statement, ...]:
    """The registered statements of the report's headline table, in its order (their ``headline``)."""
    return tuple(sorted((s for s in STATEMENTS.values() if s.headline is not None), key=lambda s: s.headline))


def get_statement(name: str) -> Statement:
    if name not in STATEMENTS:
        raise ValueError(f"unknown statement {name!r}; registered: {', '.join(STATEMENTS)}")
    return STATEMENTS[name]


def select_statements(names: Iterable[str] | None = None) -> list[Statement]:
    """The named statements, or every default one."""
    return [get_statement(n) for n in names] if names is not None else [s for s in STATEMENTS.values() if s.default]


def evaluate_statements(ctx: BoundContext, names: Iterable[str] | None = None) -> list[StatementRecord]:
    """Evaluate the named statements (default: every default statement that applies) at ``ctx.delta`` each."""
    records: list[StatementRecord] = []
    for statement in select_statements(names):
        if statement.applies(ctx):
            records += statement.evaluate(ctx, ctx.delta)
    return records
