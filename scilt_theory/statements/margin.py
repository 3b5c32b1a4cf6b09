"""The margin statements of docs/THEORY.md §4 and §8, composed from four axes, and the table of registered ones.

A margin statement is one choice on each axis (THEORY §8, "tighter forms"):

* **form** — what it bounds: ``overall`` (Theorem 5.3: the prior-weighted error), ``per_class`` (Corollary 5.4: every
  class at δ/(K m), with the balanced, group and worst-class errors from the same event) or ``weighted`` (the
  class-weighted statement: the balanced error and every group's balanced error, proofs/weighted_margin_bound.md);
* **complexity** — ``erc`` (the empirical unit complexities of the context, Lemma 5.1), ``bounded`` (the expected
  complexity when every ‖ψ(x)‖ <= r, proofs/theorem_5_3_tighter.md) or ``coupled`` (R̂ᵛ of the coupled SciLT class H_s
  on the bound sample itself, THEORY §2);
* **contraction** — ``vector`` (Lemma 5.2(b)) or ``classwise`` (proofs/classwise_contraction.md; row norm only);
* **radii** — ``class`` (the context's grid and radii), ``data`` (the data-dependent radii grid built from pre-data
  radii, proofs/data_dependent_radii.md) or ``fusion`` (one radii pair per interval of the fusion weight α, SciLT form).

Each evaluates the formula functions of scilt_theory/bounds.py at a given δ: the smallest value over the covering
points of a grid fixed before the data, every point paid for with δ/m. :data:`MARGIN_TABLE` declares the registered
combinations; a statement's name and THEORY reference are derived from its axes (:func:`margin_name`), so the names
bounds.json, the reports and the tests use stay as they were. Adding a margin statement is one row of the table (and
its formula here if the combination is new), its proof and its tests.

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
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from scilt_theory.bounds import (
    BoundTerms,
    _margin_bound,
    coupled_margin_bound,
    theorem53_bound_bounded_features,
    weighted_margin_bound,
    weighted_margin_bound_bounded_features,
)
from scilt_theory.grid import BoundGrid, GridBoundResult, GridPoint
from scilt_theory.grid import grid_evaluate as _grid_evaluate
from scilt_theory.losses import ramp_loss
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.radii import data_radii_grid, fusion_radii_grid, trained_radii
from scilt_theory.statements.targets import aggregate_class_family, class_target, group_target

__all__ = ["COMPLEXITIES", "CONTRACTIONS", "COROLLARY54", "FORMS", "MARGIN", "MARGIN_STATEMENTS", "MARGIN_TABLE",
           "RADII", "THEOREM53", "MarginStatement", "Row", "class_family_records", "class_target", "grid_floor",
           "group_target", "margin_name", "n_for_nonvacuous", "scaling_curve", "terms_of"]

#: keys of BoundTerms that the record carries itself (bound, vacuous, delta) or that the record's theory names
_RECORD_FIELDS = ("bound", "vacuous", "delta", "statement")


def terms_of(t: BoundTerms) -> dict:
    """The terms of a margin bound as a record's ``terms`` (train_margin_loss, complexity, confidence, rho, ...)."""
    return {k: v for k, v in t.to_dict().items() if k not in _RECORD_FIELDS}


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


def class_family_records(statement: Statement, ctx: BoundContext, delta: float,
                         per_class: Sequence[tuple[int, BoundTerms | None, Sequence[BoundTerms], str | None]]
                         ) -> list[StatementRecord]:
    """Records of a margin statement that holds for every class at once: each class (its best grid point), then
    the balanced, group and worst-class records (:func:`~scilt_theory.statements.targets.aggregate_class_family`)."""
    records = []
    bounded = {c: (t, ev) for c, t, ev, _ in per_class if t is not None}
    floors = {c: grid_floor(ctx, ev) for c, (_, ev) in bounded.items()}
    for c, t, ev, reason in per_class:
        if t is None:
            records.append(statement.record(ctx, class_target(c), None, delta, reason=reason, quantity="class error"))
            continue
        records.append(statement.record(ctx, class_target(c), t.bound, delta, terms_of(t), quantity="class error",
                                        floor=floors[c], n_for_nonvacuous=n_for_nonvacuous([ev], ctx.n, max)))
    return records + aggregate_class_family(
        statement, ctx, delta, {c: t.bound for c, (t, _) in bounded.items()}, floors,
        lambda members, how: n_for_nonvacuous([bounded[c][1] for c in members], ctx.n, how))


def group_detail(ctx: BoundContext, group: str, best: dict[int, BoundTerms]) -> tuple[dict, str | None]:
    """The terms bounds.json's group view shows beside a group's mean (Corollary 5.4, THEORY §4), and its reason: the
    mean terms, and the bound counting every class of the group without training samples as 1 (its error is <= 1)."""
    members = [c for c in range(ctx.num_classes) if ctx.class_groups[c] == group]
    with_bound = [c for c in members if c in best]
    detail = {"num_classes": len(members), "num_classes_with_bound": len(with_bound), "classes": members,
              "bound_all_classes": None, "train_margin_loss": None, "complexity": None, "confidence": None}
    if not members:
        return detail, "no classes in this group"
    if not with_bound:
        return {**detail, "bound_all_classes": 1.0}, "no class of this group has training samples"
    bounds = [best[c].bound for c in with_bound]
    missing = len(members) - len(with_bound)
    detail.update(bound_all_classes=float((sum(bounds) + missing) / len(members)),
                  **{k: float(np.mean([getattr(best[c], k) for c in with_bound]))
                     for k in ("train_margin_loss", "complexity", "confidence")})
    return detail, None if missing == 0 else f"{missing} class(es) without training samples left out of the mean"


# ----------------------------------------------------------------------------------------------------- the axes

@dataclass(frozen=True)
class Slice:
    """One sample the statement is applied to: the whole of S, one S_c, or S with class-weights w (w_i > 0 rows)."""

    target: str
    rows: np.ndarray            # boolean mask of the rows of S
    weights: np.ndarray | None  # w_i on all of S, 0 off the rows (weighted form); None for a plain mean
    union: int                  # the union the confidence term pays for besides the grid (1, K or T targets)

    def margin_loss(self, ctx: BoundContext, rho: float) -> float:
        losses = ramp_loss(ctx.margins[self.rows], rho)
        if self.weights is None:
            return float(np.mean(losses))
        return min(1.0, float(np.sum(self.weights[self.rows] * losses)))  # a weighted mean: <= 1 up to rounding

    @property
    def n(self) -> int:
        return int(self.rows.sum())


@dataclass(frozen=True)
class Form:
    """What a margin statement bounds, and the sample(s) it is applied to."""

    key: str                 # overall | per_class | weighted
    prefix: str              # the first part of the statement's name
    theory: str              # where the plain statement is
    bounded_theory: str      # where its bounded-features form is
    quantity: str            # what the overall / per-class records bound

    def slices(self, ctx: BoundContext) -> list[Slice | None]:
        """The samples, in record order (None: a class without training samples)."""
        if self.key == "overall":
            return [Slice("overall", np.ones(ctx.n, dtype=bool), None, 1)]
        if self.key == "per_class":
            return [Slice(class_target(c), ctx.labels == c, None, ctx.num_classes) if ctx.class_counts[c] else None
                    for c in range(ctx.num_classes)]
        targets = ctx.weighted_targets()
        return [Slice(t, w > 0, w, len(targets)) for t, w in targets.items()]


@dataclass(frozen=True)
class Complexity:
    """The complexity term's source: ``erc`` | ``bounded`` | ``coupled``."""

    key: str
    theory: str | None       # the section that names the statement (None: the form's)
    needs: frozenset[str]    # context quantities the weighted form reads (build_context ``needs``)

    def token(self, contraction: Contraction) -> str | None:
        if self.key == "bounded":  # "bounded_features", shortened after "classwise" (the registered names)
            return "bounded" if contraction.key == "classwise" else "bounded_features"
        return None if self.key == "erc" else self.key

    def configured(self, ctx: BoundContext) -> bool:
        if self.key == "bounded":
            return ctx.feature_norm_bound is not None
        if self.key == "coupled":
            return "overall" in ctx.coupled_unit and ctx.coupled_scale is not None
        return True


@dataclass(frozen=True)
class Contraction:
    """``vector`` (Lemma 5.2(b)) or ``classwise`` (proofs/classwise_contraction.md, row norm only)."""

    key: str
    theory: str | None

    def configured(self, ctx: BoundContext) -> bool:
        return self.key == "vector" or ctx.norm == "row"


@dataclass(frozen=True)
class Radii:
    """Which grid of radii the statement pays for: ``class`` | ``data`` | ``fusion``."""

    key: str
    theory: str | None

    def configured(self, ctx: BoundContext) -> bool:
        """The inputs the grid needs are given (a configuration, not a look at the trained norms)."""
        if self.key == "class":
            return True
        return ctx.head_weights is not None and (self.key == "data" or ctx.coupled_scale is not None)

    def grid_radii(self, ctx: BoundContext) -> tuple[BoundGrid, float, float]:
        """The grid fixed before the data, and the radii (or the trained norms) a grid point must cover."""
        if self.key == "class":
            return ctx.grid, ctx.radius_penult, ctx.radius_final
        grid = data_radii_grid(ctx) if self.key == "data" else fusion_radii_grid(ctx)
        return (grid, *trained_radii(ctx))

    def covers(self, ctx: BoundContext) -> bool:
        """Some grid point covers the trained heads (always for the class radii: build_context checks it)."""
        if self.key == "class":
            return True
        b1, b2 = trained_radii(ctx)
        if self.key == "data":
            return b1 <= ctx.class_radii[0] * (1 + 1e-9) and b2 <= ctx.class_radii[1] * (1 + 1e-9)
        return bool(fusion_radii_grid(ctx).covering_points(b1, b2))


OVERALL = Form("overall", "theorem53", "THEORY §4, Theorem 5.3", "THEORY §8, tighter forms (bounded features)",
               "prior-weighted error")
PER_CLASS = Form("per_class", "corollary54", "THEORY §4, Corollary 5.4",
                 "THEORY §8, tighter forms (bounded features)", "class error")
WEIGHTED = Form("weighted", "weighted_margin", "THEORY §8, class-weighted margin bound",
                "THEORY §8, class-weighted margin bound (bounded features)", "balanced error")
FORMS = {f.key: f for f in (OVERALL, PER_CLASS, WEIGHTED)}
COMPLEXITIES = {c.key: c for c in (Complexity("erc", None, frozenset({"weighted"})),
                                   Complexity("bounded", None, frozenset()),
                                   Complexity("coupled", "THEORY §8, tighter forms (coupled class)",
                                              frozenset({"coupled"})))}
CONTRACTIONS = {c.key: c for c in (Contraction("vector", None),
                                   Contraction("classwise", "THEORY §8, tighter forms (class-wise contraction)"))}
RADII = {r.key: r for r in (Radii("class", None), Radii("data", "THEORY §8, tighter forms (data-dependent radii)"),
                            Radii("fusion", None))}


def margin_name(form: str, complexity: str = "erc", contraction: str = "vector", radii: str = "class") -> str:
    """The registered name of a combination: the form's prefix, then "classwise", the complexity's token and the
    radii ("data_radii" / "fusion_radii"), each where it is not the plain choice."""
    c = CONTRACTIONS[contraction]
    tokens = [FORMS[form].prefix, "classwise" if c.key == "classwise" else None,
              COMPLEXITIES[complexity].token(c), None if radii == "class" else f"{radii}_radii"]
    return "_".join(t for t in tokens if t)


class MarginStatement(Statement):
    """One margin statement: a form, a complexity, a contraction and radii (see the module docstring)."""

    def __init__(self, form: str, complexity: str = "erc", contraction: str = "vector", radii: str = "class", *,
                 headline: int | None = None, label: str | None = None):
        self.headline, self.label = headline, label
        self.form, self.complexity = FORMS[form], COMPLEXITIES[complexity]
        self.contraction, self.radii = CONTRACTIONS[contraction], RADII[radii]
        if complexity == "coupled" and (radii != "class" or contraction != "vector" or form == "weighted"):
            raise ValueError("the coupled class has its radii fixed by s: overall or per-class, vector, class radii")
        self.name = margin_name(form, complexity, contraction, radii)
        # the most specific tightening names the section: contraction, then radii, then complexity, then the form
        bounded = self.form.bounded_theory if complexity == "bounded" else None
        self.theory = next(t for t in (self.contraction.theory, self.radii.theory, self.complexity.theory, bounded,
                                       self.form.theory) if t)
        self.needs = self.complexity.needs if form == "weighted" else \
            (self.complexity.needs if complexity == "coupled" else frozenset())

    def __repr__(self) -> str:
        return f"MarginStatement({self.name})"

    def configured(self, ctx: BoundContext) -> bool:
        """The inputs it needs are given (a feature-norm bound, the heads, a SciLT-form scale, the row norm): fixed by
        the configuration, so it decides tightest_uniform's members."""
        return all(axis.configured(ctx) for axis in (self.complexity, self.contraction, self.radii))

    def applies(self, ctx: BoundContext) -> bool:
        return self.configured(ctx) and self.radii.covers(ctx)

    # ------------------------------------------------------------------------------------ terms at a grid point
    def terms_at(self, ctx: BoundContext, s: Slice, p: GridPoint, delta: float, grid: BoundGrid) -> BoundTerms:
        loss = s.margin_loss(ctx, p.rho)
        classwise = self.contraction.key == "classwise"
        k = ctx.num_classes
        if self.complexity.key == "coupled":
            return coupled_margin_bound(loss, ctx.coupled_unit[s.target].upper, s.n, p.rho, delta,
                                        scale=ctx.coupled_scale, grid_size=ctx.grid.size, num_classes=s.union)
        if self.complexity.key == "bounded":
            sq = self._class_sq_weights(ctx, s) if classwise else None
            common = dict(radius_penult=p.radius_penult, radius_final=p.radius_final, num_outputs=k,
                          feature_norm_bound=float(ctx.feature_norm_bound), grid_size=grid.size, class_sq_weights=sq)
            if self.form.key == "weighted":
                return weighted_margin_bound_bounded_features(loss, float(np.sum(s.weights[s.rows] ** 2)), p.rho, delta,
                                                              num_targets=s.union, **common)
            return theorem53_bound_bounded_features(loss, s.n, p.rho, delta, norm=ctx.norm, num_classes=s.union,
                                                    **common)
        r1, r2 = self._unit(ctx, s)
        label = (None, None)
        if classwise:
            if self.form.key == "per_class":
                label = (0.0, 0.0)  # S_c: rows + label part = R̂ᵛ_{S_c} exactly
            else:
                l1, l2 = ctx.classwise_label_unit(self._weights(ctx, s))
                label = (p.radius_penult * l1, p.radius_final * l2)
        if self.form.key == "weighted":
            return weighted_margin_bound(loss, p.radius_penult * r1, p.radius_final * r2,
                                         float(np.sum(s.weights[s.rows] ** 2)), p.rho, delta, grid.size, s.union,
                                         p.radius_penult, p.radius_final, *label)
        return _margin_bound("Theorem 5.3" if self.form.key == "overall" else "Corollary 5.4", loss,
                             p.radius_penult * r1, p.radius_final * r2, s.n, p.rho, delta, grid.size, s.union,
                             p.radius_penult, p.radius_final, *label)

    def _unit(self, ctx: BoundContext, s: Slice) -> tuple[float, float]:
        """Upper unit complexities of both feature maps on the slice (the context's, computed once)."""
        if self.form.key == "overall":
            return ctx.unit_penult.upper, ctx.unit_final.upper
        if self.form.key == "per_class":
            c = int(s.target.split(":", 1)[1])
            return ctx.class_unit_penult[c].upper, ctx.class_unit_final[c].upper
        r1, r2 = ctx.weighted_unit[s.target]
        return r1.upper, r2.upper

    @staticmethod
    def _weights(ctx: BoundContext, s: Slice) -> np.ndarray:
        """w_i on all of S (1/n for the overall form)."""
        return np.full(ctx.n, 1.0 / ctx.n) if s.weights is None else s.weights

    def _class_sq_weights(self, ctx: BoundContext, s: Slice) -> np.ndarray:
        """a_c = Σ_{i∈S_c} w_i² of the class-wise bounded-features form (S_c with w_i = 1/n_c: 1/n_c at c)."""
        if self.form.key == "per_class":
            c = int(s.target.split(":", 1)[1])
            return np.eye(ctx.num_classes)[c] / float(ctx.class_counts[c])
        return ctx.class_sq_weights(self._weights(ctx, s))

    # ---------------------------------------------------------------------------------------------- evaluation
    def slice_grid(self, ctx: BoundContext, s: Slice, delta: float) -> GridBoundResult:
        """The statement on one slice over its grid: every covering point at δ/m (the best one is the value)."""
        if self.complexity.key == "coupled":  # H_s has its radii fixed by s: the grid's ρ axis only
            grid, b1, b2 = BoundGrid(rhos=ctx.grid.rhos), 0.0, 0.0
        else:
            grid, b1, b2 = self.radii.grid_radii(ctx)
        return _grid_evaluate(lambda p: self.terms_at(ctx, s, p, delta, grid), grid, b1, b2)

    def grid_result(self, ctx: BoundContext, delta: float) -> GridBoundResult:
        """The overall form's grid evaluation (the report's grid view)."""
        if self.form.key != "overall":
            raise ValueError(f"{self.name} is not an overall statement")
        return self.slice_grid(ctx, self.form.slices(ctx)[0], delta)

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        if self.form.key == "per_class":
            return self._class_family(ctx, delta)
        records = []
        for s in self.form.slices(ctx):
            res = self.slice_grid(ctx, s, delta)
            terms = terms_of(res.best)
            quantity = self.form.quantity
            if self.form.key == "weighted":
                quantity = "balanced error" if s.target == "balanced" else "group balanced error"
                terms.update(sum_sq_weights=float(np.sum(s.weights ** 2)),
                             classes=sorted(int(c) for c in np.unique(ctx.labels[s.rows])), num_targets=s.union)
            if self.form.key == "weighted" or self.complexity.key != "bounded":
                terms["curve"] = scaling_curve(ctx, res.evaluated)
            records.append(self.record(ctx, s.target, res.best.bound, delta, terms, quantity=quantity,
                                       floor=grid_floor(ctx, res.evaluated),
                                       n_for_nonvacuous=n_for_nonvacuous([res.evaluated], ctx.n, max)))
        return records

    def _class_family(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        per_class = []
        for c, s in enumerate(self.form.slices(ctx)):
            if s is None:
                per_class.append((c, None, (), "no training samples"))
                continue
            res = self.slice_grid(ctx, s, delta)
            per_class.append((c, res.best, res.evaluated, None))
        records = class_family_records(self, ctx, delta, per_class)
        if self.complexity.key != "erc":
            return records
        # with the empirical complexities, the group view of bounds.json also shows the mean terms (group_detail)
        best = {c: t for c, t, _, _ in per_class if t is not None}
        for i, r in enumerate(records):
            if r.target.startswith("group:"):
                detail, reason = group_detail(ctx, r.target.split(":", 1)[1], best)
                records[i] = replace(r, terms={**r.terms, **detail}, reason=reason)
        return records


class Row(NamedTuple):
    """One registered margin statement: its axes, and where the report shows it (Statement.headline / label)."""

    form: str
    complexity: str = "erc"
    contraction: str = "vector"
    radii: str = "class"
    headline: int | None = None
    label: str | None = None


#: The registered margin statements, one row per combination, in report order (statements/__init__.py interleaves
#: the other families at their places).
MARGIN_TABLE: tuple[Row, ...] = (
    Row("overall", headline=0, label="contract (Thm 5.3 / Cor. 5.4)"),
    Row("per_class", headline=1),
    Row("overall", "bounded"),
    Row("per_class", "bounded"),
    Row("weighted", headline=2, label="class-weighted"),
    Row("weighted", "bounded"),
    Row("overall", "erc", "classwise"),
    Row("per_class", "erc", "classwise"),
    Row("weighted", "erc", "classwise"),
    Row("overall", "bounded", "classwise", "data"),
    Row("per_class", "bounded", "classwise", "data"),
    Row("weighted", "bounded", "classwise", "data"),
    Row("overall", "bounded", "classwise", "fusion"),
    Row("per_class", "bounded", "classwise", "fusion"),
    Row("weighted", "bounded", "classwise", "fusion"),
    Row("overall", "erc", "vector", "data"),
    Row("per_class", "erc", "vector", "data"),
    Row("weighted", "erc", "vector", "data"),
    Row("weighted", "bounded", "vector", "data"),
    Row("overall", "bounded", "vector", "data"),
    Row("per_class", "bounded", "vector", "data"),
    Row("overall", "coupled"),
    Row("per_class", "coupled"),
)
MARGIN_STATEMENTS: tuple[MarginStatement, ...] = tuple(
    MarginStatement(r.form, r.complexity, r.contraction, r.radii, headline=r.headline, label=r.label)
    for r in MARGIN_TABLE)
#: the registered margin statements by name
MARGIN = {s.name: s for s in MARGIN_STATEMENTS}
THEOREM53, COROLLARY54 = MARGIN["theorem53"], MARGIN["corollary54"]
