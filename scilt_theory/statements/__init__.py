"""Bound statements as registered components (docs/THEORY.md §4, §8), and the fused model's bounds built from them.

``fused_model_bounds`` = validate → context (:func:`build_context`: margins, estimators, unit complexities, the grid,
the δ accounting, computed once) → evaluate the selected statements (:data:`STATEMENTS`) → views.

The registry is the declared tuple :data:`REGISTERED` below, in report order. Adding a margin statement: one row of
statements/margin.MARGIN_TABLE (and its formula there if the combination is new), its proof in proofs/ and its tests;
it joins ``tightest_uniform`` only if named in :data:`TIGHTEST_MEMBERS` (a new row appended to the table is
registered after the others). Another family: a :class:`Statement`
subclass in a module of this package, an instance in :data:`REGISTERED`, its proof and its tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scilt_theory.grid import BoundGrid
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
from scilt_theory.statements.inputs import Estimation, Hypothesis, Sample
from scilt_theory.statements.margin import MARGIN, MARGIN_STATEMENTS
from scilt_theory.statements.pacbayes import PAC_BAYES
from scilt_theory.statements.tighter import TightestUniform
from scilt_theory.statements.views import Views, build_views

#: tightest_uniform's members, by name, each at δ/J (J: the members the configuration sets up): a declared tuple, so
#: a new table row joins only when named here and J changes only by an edit of this line
TIGHTEST_MEMBERS = (
    "theorem53", "corollary54", "theorem53_bounded_features", "corollary54_bounded_features", "weighted_margin",
    "weighted_margin_bounded_features", "theorem53_classwise", "corollary54_classwise", "weighted_margin_classwise",
    "theorem53_classwise_bounded_data_radii", "corollary54_classwise_bounded_data_radii",
    "weighted_margin_classwise_bounded_data_radii", "theorem53_classwise_bounded_fusion_radii",
    "corollary54_classwise_bounded_fusion_radii", "weighted_margin_classwise_bounded_fusion_radii",
    "theorem53_data_radii", "corollary54_data_radii", "weighted_margin_data_radii",
    "weighted_margin_bounded_features_data_radii", "theorem53_bounded_features_data_radii",
    "corollary54_bounded_features_data_radii", "theorem53_coupled", "corollary54_coupled")
TIGHTEST_UNIFORM = TightestUniform(members=tuple(MARGIN[n] for n in TIGHTEST_MEMBERS))
#: every registered statement, in report order (bounds.json, report.md)
REGISTERED = (*(MARGIN[n] for n in ("theorem53", "corollary54", "theorem53_bounded_features",
                                    "corollary54_bounded_features")),
              HOLDOUT_CERTIFICATE, TESTSET_CERTIFICATE, *MARGIN_STATEMENTS[4:15], PAC_BAYES, *MARGIN_STATEMENTS[15:],
              TIGHTEST_UNIFORM)
for _statement in REGISTERED:
    register_statement(_statement)

__all__ = ["REGISTERED", "STATEMENTS", "TIGHTEST_MEMBERS", "TIGHTEST_UNIFORM", "VALIDITY", "BoundContext",
           "Estimation", "FusedBounds", "Hypothesis", "Sample", "Statement", "Views", "build_context", "build_views",
           "evaluate_statements", "fused_model_bounds", "get_statement", "headline_statements", "register_statement"]


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
                       statements: Iterable[str] | None = None, num_classes: int, radius_penult: float,
                       radius_final: float, grid: BoundGrid, norm: str = "row",
                       class_radii: tuple[float, float] | None = None, delta: float = 0.05, method: str = "auto",
                       n_draws: int = 1000, delta_mc: float = 0.01, seed: int = 0, device: Any = None,
                       class_names: Sequence[str] | None = None,
                       class_groups: Sequence[str] | Mapping[int, str] | None = None,
                       class_counts: Sequence[int] | None = None, many_threshold: int = 100, few_threshold: int = 20,
                       feature_norm_bound: float | None = None, validity: str = "diagnostic",
                       head_weights: tuple[Any, Any] | None = None, prior_head_weights: tuple[Any, Any] | None = None,
                       scale: float | None = None, coupled_scale: float | None = None,
                       certificate_samples: Mapping[str, Any] | None = None) -> FusedBounds:
    """Theorem 5.3, Corollary 5.4 and every other selected statement for a trained fused model (THEORY §1, §4, §5).

    The keywords are those of the typed inputs (statements/inputs.py), gathered here for the callers' convenience.
    The sample: ψ₁, ψ₂, scores, labels (the classes, their names, groups, training counts and Many/Few thresholds).
    The scorer's class: its radii (or the trained norms a grid radius must cover), the pre-data ``class_radii`` of
    the data-dependent radii grid, the norm, the heads (U, V), a prior centre (U₀, V₀), the cosine scale, the coupled
    scale, the feature-norm bound. The estimation: the grid fixed before the data, δ, the estimator, draws, δ_mc, seed,
    device, the validity regime. ``certificate_samples``: hold-out / test-set errors. Each is documented at
    :func:`build_context`. ``statements``: names of registered statements (default: every default statement that
    applies). Each statement holds on its own w.p. >= 1 - delta - delta_mc.
    """
    chosen = select_statements(statements)
    needs = frozenset().union(*(s.needs for s in chosen))
    sample = Sample(psi_penult, psi_final, scores, labels, num_classes, class_names=class_names,
                    class_groups=class_groups, class_counts=class_counts, many_threshold=many_threshold,
                    few_threshold=few_threshold)
    hypothesis = Hypothesis(radius_penult, radius_final, norm=norm, class_radii=class_radii,
                            feature_norm_bound=feature_norm_bound, head_weights=head_weights,
                            prior_head_weights=prior_head_weights, scale=scale, coupled_scale=coupled_scale)
    estimation = Estimation(grid, delta=delta, method=method, n_draws=n_draws, delta_mc=delta_mc, seed=seed,
                            device=device, validity=validity)
    ctx = build_context(sample, hypothesis, estimation, needs=needs, certificate_samples=certificate_samples)
    return FusedBounds(context=ctx, records=tuple(evaluate_statements(ctx, [s.name for s in chosen])))
