"""The statements of THEORY §2-§5 as small functions, each with its formula beside the code.

Map from docs/THEORY.md to this module
---------------------------------
* §2 Lemma 5.1 (summed class): :func:`lemma51_sum`, :func:`lemma51_scale`.
* §3 Lemma 5.2 (a) envelope: :func:`envelope`; (b) contraction: :func:`margin_lipschitz`,
  :func:`vector_contraction`, :func:`contraction_factor`; (c) uniform deviation:
  :func:`uniform_deviation_bound`, :func:`confidence_term`.
* §4 Theorem 5.3: :func:`theorem53_bound`, over a grid: :func:`theorem53_grid_bound`.
  Corollary 5.4: :func:`corollary54_class_bound` (every class, the groups and the worst class: the corollary54
  statement, scilt_theory/statements/margin.py). The grid of §4 is scilt_theory/grid.py.
* §5 The δ ledger of the Monte Carlo certificates is scilt_theory/confidence.py; the ERC record
  scilt_theory/erc.py.
* These formulas evaluated as registered statements on a trained fused model: scilt_theory/statements/
  (``fused_model_bounds``).

A tighter form beside the contract (proved in the docstring, never the default):
:func:`theorem53_bound_bounded_features` uses the *expected* Rademacher complexity (Mohri et al., Thm 3.3,
first statement) when every feature has a known norm bound (cosine heads: ``||psi|| = 1``). Its confidence
term is ``sqrt(ln(m/delta)/(2n))`` instead of ``3 sqrt(ln(2m/delta)/(2n))``.

Conventions: ``delta`` is always the *total* failure probability of one statement; with a grid of size ``m``
and a union over ``K`` classes every single application gets ``delta / (K m)``, which is where
``ln(2 K m / delta)`` comes from. Rademacher complexities passed to the bounds must be *upper* values
(closed form, exact, or certified Monte Carlo; THEORY §5); an MC mean is not an upper value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from scilt_theory.codec import to_jsonable
from scilt_theory.constraints import (
    check_choice,
    check_count,
    check_delta,
    check_finite,
    check_nonneg,
    check_positive,
    check_unit_mean,
)
from scilt_theory.erc import ErcSummary, finite_or_none
from scilt_theory.grid import BoundGrid, GridBoundResult, GridPoint, grid_evaluate
from scilt_theory.losses import margins as _margins
from scilt_theory.losses import ramp_loss

__all__ = [
    "BoundTerms",
    "DeviationBound",
    "confidence_term",
    "contraction_factor",
    "coupled_margin_bound",
    "corollary54_class_bound",
    "NORMS",
    "check_norm",
    "envelope",
    "lemma51_scale",
    "lemma51_sum",
    "margin_lipschitz",
    "theorem53_bound",
    "theorem53_bound_bounded_features",
    "theorem53_grid_bound",
    "uniform_deviation_bound",
    "vector_contraction",
    "weighted_confidence_term",
    "weighted_margin_bound",
    "weighted_margin_bound_bounded_features",
]



def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def lemma51_scale(r: Any, c: float) -> Any:
    """Lemma 5.1, scaling (THEORY §2): ``R_hat(cF) = |c| R_hat(F)``.

    For the norm balls of THEORY §1 this is linearity in the radius: ``R_hat(W(B)) = B R_hat(W(1))``.

    Parameters
    ----------
    r : float or Rademacher result (ErcSummary, or its dict)
    c : float

    Returns
    -------
    float for a float ``r``; otherwise an :class:`ErcSummary` with value, upper, lower and stderr scaled
    by ``|c|`` (and ``radius`` by ``|c|``).
    """
    c = abs(check_finite(c, "c"))
    if _is_number(r):
        return c * check_finite(r, "r")
    s = ErcSummary.from_result(r)

    def sc(x: float | None) -> float | None:
        return None if x is None else c * x

    return replace(s, value=sc(s.value), upper=c * s.upper, stderr=sc(s.stderr), lower=sc(s.lower),
                   radius=sc(s.radius))


def lemma51_sum(r1: Any, r2: Any) -> Any:
    """Lemma 5.1, summed class (THEORY §2): ``R_hat(F_1 + F_2) <= R_hat(F_1) + R_hat(F_2)``.

    Equality holds when f_1 and f_2 range independently (``U x V`` of THEORY §1), because the supremum
    separates for every sign draw; with the *same* sign draws the MC means add exactly too.

    Parameters
    ----------
    r1, r2 : floats, or Rademacher results (ErcSummary, or their dicts)

    Returns
    -------
    ``r1 + r2`` for floats. For results an :class:`ErcSummary` with ``value = v1 + v2``,
    ``upper = u1 + u2`` (valid for any F_1, F_2), ``lower = l1 + l2`` (valid for independent classes,
    where the sum is an equality) and ``stderr <= s1 + s2`` (Minkowski: ``sd(X+Y) <= sd X + sd Y``,
    whatever the correlation of the two estimates).
    """
    if _is_number(r1) and _is_number(r2):
        return check_finite(r1, "r1") + check_finite(r2, "r2")
    a, b = ErcSummary.from_result(r1), ErcSummary.from_result(r2)

    def add(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else x + y

    method = a.method if a.method == b.method else f"{a.method}+{b.method}"
    return ErcSummary(value=add(a.value, b.value), upper=a.upper + b.upper, stderr=add(a.stderr, b.stderr),
                      lower=add(a.lower, b.lower), method=method, n=a.n if a.n == b.n else None,
                      num_outputs=a.num_outputs if a.num_outputs == b.num_outputs else None,
                      norm=a.norm if a.norm == b.norm else None, radius=None,
                      n_draws=a.n_draws if a.n_draws == b.n_draws else None,
                      delta_mc=add(a.delta_mc, b.delta_mc))


# ----------------------------------------------------------------------------------------------------------
# Lemma 5.2 (THEORY §3)
# ----------------------------------------------------------------------------------------------------------

#: The norm balls of the linear classes (THEORY §1): ``W_F(B) = {||W||_F <= B}`` and ``W_row(B) = {||w_c|| <= B}``.
NORMS = ("frobenius", "row")


def check_norm(norm: Any) -> str:
    """One of :data:`NORMS`."""
    return check_choice(norm, "norm", NORMS)


def envelope(sum_sq: float, n: int, radius: float, num_outputs: int = 1, norm: str = "frobenius"
             ) -> tuple[float, float]:
    """Lemma 5.2(a), the envelope of the linear class (THEORY §3a), from ``S2 = sum_i ||psi_i||^2`` of n points.

    Jensen above; Khintchine-Kahane with the optimal constant ``1/sqrt(2)`` (Latala-Oleszkiewicz) below:

    * Frobenius ball: ``(B/n) sqrt(K S2 / 2) <= R_hat^v(W_F(B)) <= (B/n) sqrt(K S2)``;
    * row-wise ball:  ``(B K/n) sqrt(S2 / 2) <= R_hat^v(W_row(B)) <= (B K/n) sqrt(S2)``;
    * K = 1 gives the scalar l2 ball for either norm.

    The closed-form estimator of scilt_theory/rademacher.py (``closed_form_bounds`` on a feature matrix, and the
    closed side of every certificate) is this function.

    Returns
    -------
    (lower, upper) : tuple of floats
    """
    s2 = check_nonneg(sum_sq, "sum_sq")
    n = check_count(n, "n")
    b = check_nonneg(radius, "radius")
    k = check_count(num_outputs, "num_outputs")
    upper = b / n * math.sqrt(k * s2) if check_norm(norm) == "frobenius" else b * k / n * math.sqrt(s2)
    return upper / math.sqrt(2.0), upper


def margin_lipschitz(rho: float) -> float:
    """Lipschitz constant of ``v -> Phi_rho(M(v, y))`` w.r.t. the l2 norm on R^K (THEORY §3b): ``sqrt(2)/rho``.

    ``|M(v,y) - M(v',y)| <= |d_y| + max_{c != y} |d_c| <= sqrt(2) ||d||_2`` (``d = v - v'``) and ``Phi_rho``
    is ``1/rho``-Lipschitz.
    """
    return math.sqrt(2.0) / check_positive(rho, "rho")


def vector_contraction(lipschitz: float, rv: float) -> float:
    """Lemma 5.2(b), vector contraction (Maurer 2016; THEORY §3b): ``R_hat(l o F) <= sqrt(2) L R_hat^v(F)``.

    Parameters
    ----------
    lipschitz : float
        ``L``, the l2-Lipschitz constant of every ``l(., y)``.
    rv : float
        ``R_hat^v_S(F)``, the vector Rademacher complexity of F (an upper value).
    """
    return math.sqrt(2.0) * check_nonneg(lipschitz, "lipschitz") * check_nonneg(rv, "rv")


def contraction_factor(rho: float) -> float:
    """Lemma 5.2(b) for the ramp of the margin (THEORY §3b): ``sqrt(2) * sqrt(2)/rho = 2/rho``.

    ``R_hat_S(Phi_rho o M o F) <= (2/rho) R_hat^v_S(F)``.
    """
    return vector_contraction(margin_lipschitz(rho), 1.0)


def classwise_contraction_factor(rho: float) -> float:
    """The class-wise contraction (THEORY §8; proofs/classwise_contraction.md): ``1/rho``.

    ``Phi_rho`` is ``1/rho``-Lipschitz, so Talagrand's scalar contraction gives ``R_hat_S(Phi_rho o M o F) <=
    (1/rho) R_hat_S(M o F)``; the margin class is then split row by row (the label row on the points of its class,
    every row as a competitor on the points of the other classes) instead of through Maurer's vector contraction.
    """
    return 1.0 / check_positive(rho, "rho")


def classwise_geometry(sq_weights_by_class: Sequence[float]) -> float:
    """``sum_c (sqrt(a_c) + sqrt(A - a_c))``, ``a_c = sum_{i: y_i = c} w_i^2``, ``A = sum_c a_c`` (THEORY §8).

    With every ``||psi|| <= 1`` and unit radius it bounds the class-wise complexity (label part + competitor part)
    of every sample with these labels (Jensen: ``E||sum_{i in T} sigma_i w_i psi_i|| <= sqrt(sum_{i in T} w_i^2)``).
    ``w_i = 1/n``: ``sum_c (sqrt(n_c) + sqrt(n - n_c)) / n``; a one-class sample S_c (``w_i = 1/n_c``): ``K/sqrt(n_c)``.
    """
    competitors, label = classwise_parts(sq_weights_by_class)
    return competitors + label


def classwise_parts(sq_weights_by_class: Sequence[float]) -> tuple[float, float]:
    """The two sums of :func:`classwise_geometry`: competitors ``sum_c sqrt(A - a_c)``, labels ``sum_c sqrt(a_c)``."""
    a = np.asarray([check_nonneg(v, "sq_weights_by_class") for v in sq_weights_by_class], dtype=np.float64)
    if a.size < 2:
        raise ValueError(f"sq_weights_by_class needs one entry per class (K >= 2), got {a.size}.")
    total = float(a.sum())
    if total <= 0:
        raise ValueError("sq_weights_by_class must not be all zero.")
    return float(np.sum(np.sqrt(np.maximum(total - a, 0.0)))), float(np.sum(np.sqrt(a)))


def _margin_complexity(rho: float, r1: float, r2: float, label_penult: float | None,
                       label_final: float | None) -> float:
    """The complexity term of a margin bound. Without label parts: Lemma 5.1 + Lemma 5.2(b) + the 2 of Lemma
    5.2(c), ``2 (2/rho)(r1 + r2)``. With them (the class-wise contraction, THEORY §8): ``2 (1/rho)(r1 + r2 + l1 + l2)``,
    ``r_j`` the competitor parts (every row on the sample; upper values) and ``l_j`` the label parts."""
    if label_penult is None and label_final is None:
        return 2.0 * contraction_factor(rho) * lemma51_sum(r1, r2)
    l1 = check_nonneg(label_penult or 0.0, "label_penult")
    l2 = check_nonneg(label_final or 0.0, "label_final")
    return 2.0 * classwise_contraction_factor(rho) * (r1 + r2 + l1 + l2)


@dataclass(frozen=True)
class DeviationBound:
    """Terms of Lemma 5.2(c): ``E g <= E_hat g + 2 R_hat_S(G) + 3 sqrt(ln(2/delta)/(2n))``."""

    empirical_mean: float = field(metadata={"help": "E_hat_S g"})
    complexity: float = field(metadata={"help": "2 R_hat_S(G)"})
    confidence: float = field(metadata={"help": "3 sqrt(ln(2/delta)/(2n))"})
    bound: float = field(metadata={"help": "the bound: sum of the three terms"})
    n: int = field(metadata={"help": "sample size"})
    delta: float = field(metadata={"help": "failure probability"})

    def to_dict(self) -> dict:
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})


def confidence_term(n: int, delta: float, grid_size: int = 1, num_classes: int = 1) -> float:
    """Confidence term of Lemma 5.2(c), Theorem 5.3 and Corollary 5.4 (THEORY §3c, §4).

    ``3 sqrt(ln(2 K m / delta) / (2 n))`` -- Lemma 5.2(c) applied at confidence ``delta/(K m)``: a union
    bound over ``m = grid_size`` grid points and ``K = num_classes`` classes (``K = 1`` for Theorem 5.3).
    Using a grid therefore costs exactly ``ln(m)`` inside the logarithm.
    """
    n = check_count(n, "n")
    delta = check_delta(delta)
    m = check_count(grid_size, "grid_size")
    k = check_count(num_classes, "num_classes")
    return 3.0 * math.sqrt(math.log(2.0 * k * m / delta) / (2.0 * n))


def uniform_deviation_bound(empirical_mean: float, rademacher_of_loss_class: float, n: int, delta: float
                            ) -> DeviationBound:
    """Lemma 5.2(c), uniform deviation (Mohri et al., Foundations of ML, Thm 3.3; THEORY §3c).

    For ``G`` with values in [0, 1], w.p. >= 1 - delta over S, for every g in G:
    ``E g <= E_hat_S g + 2 R_hat_S(G) + 3 sqrt(ln(2/delta)/(2n))``.
    """
    e = check_unit_mean(empirical_mean, "empirical_mean")
    r = check_nonneg(rademacher_of_loss_class, "rademacher_of_loss_class")
    conf = confidence_term(n, delta)
    return DeviationBound(empirical_mean=e, complexity=2.0 * r, confidence=conf, bound=e + 2.0 * r + conf,
                          n=int(n), delta=float(delta))


# ----------------------------------------------------------------------------------------------------------
# Theorem 5.3 and Corollary 5.4 (THEORY §4)
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoundTerms:
    """The terms of one generalisation bound, broken out (THEORY §4).

    ``bound = train_margin_loss + complexity + confidence``; ``vacuous`` is ``bound > 1`` (the bound is
    reported, never hidden or clipped here).
    """

    train_margin_loss: float = field(metadata={"help": "R_hat_{S,rho}(f), mean ramp loss of the margins"})
    complexity: float = field(metadata={"help": "(4/rho)(R_hat^v(F_{N-1}) + R_hat^v(F_N))"})
    confidence: float = field(metadata={"help": "3 sqrt(ln(2 K m/delta)/(2n))"})
    bound: float = field(metadata={"help": "the bound: sum of the three terms"})
    vacuous: bool = field(metadata={"help": "bound > 1"})
    rho: float = field(metadata={"help": "margin parameter"})
    delta: float = field(metadata={"help": "total failure probability of the statement"})
    n: int = field(metadata={"help": "sample size (n, or n_c for a class)"})
    grid_size: int = field(default=1, metadata={"help": "m, number of grid points paid for"})
    num_classes: int = field(default=1, metadata={"help": "K of the union over classes (1 for Theorem 5.3)"})
    rc_penult: float | None = field(default=None, metadata={"help": "upper R_hat^v(F_{N-1}) used"})
    rc_final: float | None = field(default=None, metadata={"help": "upper R_hat^v(F_N) used"})
    radius_penult: float | None = field(default=None, metadata={"help": "B_1 of the class (None if not known)"})
    radius_final: float | None = field(default=None, metadata={"help": "B_2 of the class (None if not known)"})
    statement: str = field(default="Theorem 5.3", metadata={"help": "THEORY statement the terms come from"})
    label_penult: float | None = field(default=None, metadata={
        "help": "class-wise contraction only: the label part of the penultimate complexity (None: Lemma 5.2(b))"})
    label_final: float | None = field(default=None, metadata={
        "help": "class-wise contraction only: the label part of the final complexity (None: Lemma 5.2(b))"})

    def to_dict(self) -> dict:
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})


def _margin_bound(statement: str, train_margin_loss: float, rc_penult: float, rc_final: float, n: int,
                  rho: float, delta: float, grid_size: int, num_classes: int,
                  radius_penult: float | None = None, radius_final: float | None = None,
                  label_penult: float | None = None, label_final: float | None = None) -> BoundTerms:
    e = check_unit_mean(train_margin_loss, "train_margin_loss")
    r1 = check_nonneg(rc_penult, "rc_penult")
    r2 = check_nonneg(rc_final, "rc_final")
    rho = check_positive(rho, "rho")
    # Lemma 5.2(c) doubles the loss-class complexity, Lemma 5.2(b) contracts it by 2/rho and
    # Lemma 5.1 sums the two classes: 2 * (2/rho) * (r1 + r2) = (4/rho)(r1 + r2); or the class-wise contraction.
    complexity = _margin_complexity(rho, r1, r2, label_penult, label_final)
    conf = confidence_term(n, delta, grid_size=grid_size, num_classes=num_classes)
    total = e + complexity + conf
    return BoundTerms(train_margin_loss=e, complexity=complexity, confidence=conf, bound=total,
                      vacuous=bool(total > 1.0), rho=rho, delta=float(delta), n=int(n), grid_size=int(grid_size),
                      num_classes=int(num_classes), rc_penult=r1, rc_final=r2,
                      radius_penult=finite_or_none(radius_penult), radius_final=finite_or_none(radius_final),
                      statement=statement, label_penult=finite_or_none(label_penult),
                      label_final=finite_or_none(label_final))


def theorem53_bound(train_margin_loss: float, rc_penult: float, rc_final: float, n: int, rho: float,
                    delta: float, grid_size: int = 1) -> BoundTerms:
    """Theorem 5.3, the generalisation bound of the fused model (THEORY §4).

    W.p. >= 1 - delta over S, for every f in F_{N-1} + F_N::

        P_D(argmax_c f_c(x) != y) <= R_hat_{S,rho}(f) + (4/rho) [R_hat^v_S(F_{N-1}) + R_hat^v_S(F_N)]
                                     + 3 sqrt(ln(2m/delta) / (2n))

    With ``grid_size = m > 1`` this is one point of a grid fixed before seeing S; every point is evaluated
    at ``delta/m`` so that the statement holds for all points at once.

    Parameters
    ----------
    train_margin_loss : float in [0, 1]
        ``R_hat_{S,rho}(f)``, the mean ramp loss of the margins on S.
    rc_penult, rc_final : float >= 0
        *Upper* values of ``R_hat^v_S(F_{N-1})`` and ``R_hat^v_S(F_N)`` (closed form, exact, or certified MC).
    n : int >= 1
    rho : float > 0
    delta : float in (0, 1)
    grid_size : int >= 1
    """
    return _margin_bound("Theorem 5.3", train_margin_loss, rc_penult, rc_final, n, rho, delta,
                         grid_size, 1)


def corollary54_class_bound(class_margin_loss: float, rc_penult: float, rc_final: float, n_c: int, rho: float,
                            delta: float, num_classes: int, grid_size: int = 1) -> BoundTerms:
    """Corollary 5.4, the bound for one class (THEORY §4).

    Conditional on the labels, S_c is i.i.d. from D(x | y = c); simultaneously for every class with
    n_c >= 1 (union over K classes and m grid points), w.p. >= 1 - delta::

        P_{D_c}(error) <= R_hat_{S_c,rho}(f) + (4/rho) [R_hat^v_{S_c}(F_{N-1}) + R_hat^v_{S_c}(F_N)]
                          + 3 sqrt(ln(2 K m / delta) / (2 n_c))

    Raises ``ValueError`` for ``n_c = 0`` (no bound exists for a class without training samples).
    """
    if isinstance(n_c, (int, np.integer)) and not isinstance(n_c, bool) and int(n_c) == 0:
        raise ValueError("a class with no training samples (n_c = 0) has no Corollary 5.4 bound.")
    k = check_count(num_classes, "num_classes")
    return _margin_bound("Corollary 5.4", class_margin_loss, rc_penult, rc_final, n_c, rho, delta, grid_size, k)


def coupled_margin_bound(train_margin_loss: float, rc_coupled: float, n: int, rho: float, delta: float, *,
                         scale: float, grid_size: int = 1, num_classes: int = 1) -> BoundTerms:
    """Theorem 5.3 / Corollary 5.4 with the coupled class H_s in place of the Lemma 5.1 sum (THEORY §8;
    proofs/theorem_5_3_tighter.md, A).

    W.p. >= 1 - delta, for every h in H_s (one W1, W2, alpha; the trained cosine SciLT scorer is one)::

        err <= R_hat_{S,rho}(h) + (4/rho) R_hat^v_S(H_s) + 3 sqrt(ln(2 K m/delta)/(2n))

    ``rc_coupled`` is an upper value of R_hat^v_S(H_s) computed on the bound sample itself (not a subsample).
    Scores of H_s satisfy |h_c| <= 2s ||psi||, so the class's radii are recorded as (s, s).
    """
    e = check_unit_mean(train_margin_loss, "train_margin_loss")
    r = check_nonneg(rc_coupled, "rc_coupled")
    rho = check_positive(rho, "rho")
    s = check_nonneg(scale, "scale")
    complexity = 2.0 * contraction_factor(rho) * r
    conf = confidence_term(n, delta, grid_size=grid_size, num_classes=num_classes)
    total = e + complexity + conf
    return BoundTerms(train_margin_loss=e, complexity=complexity, confidence=conf, bound=total,
                      vacuous=bool(total > 1.0), rho=rho, delta=float(delta), n=int(n), grid_size=int(grid_size),
                      num_classes=int(num_classes), rc_penult=r, rc_final=0.0, radius_penult=s, radius_final=s,
                      statement="coupled class")


def weighted_confidence_term(sum_sq_weights: float, delta: float, grid_size: int = 1, num_targets: int = 1) -> float:
    """Confidence term of the class-weighted margin bound (THEORY §8): ``3 sqrt(ln(2 T m / delta) sum_i w_i^2 / 2)``.

    McDiarmid with bounded differences ``w_i`` (the loss lies in [0, 1]), applied twice as in Lemma 5.2(c), at
    ``delta/(T m)`` for a union over ``T`` targets and ``m`` grid points. With ``w_i = 1/n`` it is
    :func:`confidence_term`.
    """
    s2 = check_finite(sum_sq_weights, "sum_sq_weights")
    if s2 <= 0:
        raise ValueError(f"sum_sq_weights must be positive, got {s2}.")
    delta = check_delta(delta)
    m = check_count(grid_size, "grid_size")
    t = check_count(num_targets, "num_targets")
    return 3.0 * math.sqrt(math.log(2.0 * t * m / delta) * s2 / 2.0)


def weighted_margin_bound(train_margin_loss: float, rc_penult: float, rc_final: float, sum_sq_weights: float,
                          rho: float, delta: float, grid_size: int = 1, num_targets: int = 1,
                          radius_penult: float | None = None, radius_final: float | None = None,
                          label_penult: float | None = None, label_final: float | None = None) -> BoundTerms:
    """The class-weighted margin bound (THEORY §8; proofs/weighted_margin_bound.md).

    Conditionally on the labels, with sample weights ``w_i >= 0`` that depend on the labels only, w.p. >= 1 - delta,
    for every f in F_{N-1} + F_N::

        sum_c W_c err_c(f) <= sum_i w_i Phi_rho(M_f(x_i, y_i)) + (4/rho) [R^w(F_{N-1}) + R^w(F_N)]
                              + 3 sqrt(ln(2 T m/delta) sum_i w_i^2 / 2),     W_c = sum_{i: y_i = c} w_i,

    with ``R^w(F) = E_sigma sup_f sum_i sum_c sigma_ic w_i f_c(x_i)`` the weighted complexity (``rc_*`` are its
    upper values at the class radii). ``w_i = 1/n`` is Theorem 5.3 read conditionally (the prior-weighted error);
    ``w_i = 1/(|C| n_{y_i})`` on a set C of classes bounds their balanced error. With ``label_*`` the class-wise
    contraction replaces Lemma 5.2(b): complexity ``(2/rho)(rc_penult + rc_final + label_penult + label_final)``
    (THEORY §8; proofs/classwise_contraction.md).
    """
    e = check_unit_mean(train_margin_loss, "train_margin_loss")
    r1 = check_nonneg(rc_penult, "rc_penult")
    r2 = check_nonneg(rc_final, "rc_final")
    rho = check_positive(rho, "rho")
    complexity = _margin_complexity(rho, r1, r2, label_penult, label_final)
    conf = weighted_confidence_term(sum_sq_weights, delta, grid_size, num_targets)
    total = e + complexity + conf
    return BoundTerms(train_margin_loss=e, complexity=complexity, confidence=conf, bound=total,
                      vacuous=bool(total > 1.0), rho=rho, delta=float(delta),
                      n=max(1, int(round(1.0 / float(sum_sq_weights)))), grid_size=int(grid_size),
                      num_classes=int(num_targets), rc_penult=r1, rc_final=r2,
                      radius_penult=finite_or_none(radius_penult), radius_final=finite_or_none(radius_final),
                      statement="class-weighted margin bound", label_penult=finite_or_none(label_penult),
                      label_final=finite_or_none(label_final))


def weighted_margin_bound_bounded_features(train_margin_loss: float, sum_sq_weights: float, rho: float, delta: float,
                                            *, radius_penult: float, radius_final: float, num_outputs: int,
                                            feature_norm_bound: float = 1.0, grid_size: int = 1,
                                            num_targets: int = 1,
                                            class_sq_weights: Sequence[float] | None = None) -> BoundTerms:
    """The class-weighted margin bound with the expected complexity, when every ||psi(x)|| <= r (THEORY §8;
    proofs/weighted_margin_bound.md, "Bounded features").

    W.p. >= 1 - delta (labels fixed, a union over T targets and m grid points), for every f in F_{N-1} + F_N::

        sum_c W_c err_c <= sum_i w_i Phi_rho(M_i) + (4/rho) (B_1 + B_2) K r sqrt(sum_i w_i^2)
                           + sqrt(ln(T m/delta) sum_i w_i^2 / 2)

    With ``w_i = 1/n`` it is :func:`theorem53_bound_bounded_features` (row norm). With ``class_sq_weights``
    (``a_c = sum_{i: y_i = c} w_i^2`` for every class) the class-wise contraction replaces Lemma 5.2(b): complexity
    ``(2/rho)(B_1 + B_2) r sum_c (sqrt(a_c) + sqrt(A - a_c))`` (:func:`classwise_geometry`; THEORY §8).
    """
    e = check_unit_mean(train_margin_loss, "train_margin_loss")
    s2 = check_finite(sum_sq_weights, "sum_sq_weights")
    if s2 <= 0:
        raise ValueError(f"sum_sq_weights must be positive, got {s2}.")
    rho = check_positive(rho, "rho")
    delta = check_delta(delta)
    b1, b2 = check_nonneg(radius_penult, "radius_penult"), check_nonneg(radius_final, "radius_final")
    k_out = check_count(num_outputs, "num_outputs")
    r = check_nonneg(feature_norm_bound, "feature_norm_bound")
    m = check_count(grid_size, "grid_size")
    t = check_count(num_targets, "num_targets")
    rc1, rc2, label1, label2 = _bounded_parts(b1, b2, r, r, k_out * math.sqrt(s2), class_sq_weights)
    complexity = _margin_complexity(rho, rc1, rc2, label1, label2)
    conf = math.sqrt(math.log(t * m / delta) * s2 / 2.0)
    total = e + complexity + conf
    return BoundTerms(train_margin_loss=e, complexity=complexity, confidence=conf, bound=total,
                      vacuous=bool(total > 1.0), rho=rho, delta=delta, n=max(1, int(round(1.0 / s2))),
                      grid_size=m, num_classes=t, rc_penult=rc1, rc_final=rc2, radius_penult=b1, radius_final=b2,
                      statement="class-weighted margin bound (bounded features)", label_penult=label1,
                      label_final=label2)


def _bounded_parts(b1: float, b2: float, r1: float, r2: float, vector_geometry: float,
                   class_sq_weights: Sequence[float] | None) -> tuple[float, float, float | None, float | None]:
    """(competitor parts, label parts) of a bounded-features complexity: ``B_j r_j`` times ``vector_geometry``
    (``c_K sqrt(sum w^2)``, Lemma 5.2(b)) and no label parts, or the class-wise split of
    :func:`classwise_geometry` (THEORY §8)."""
    if class_sq_weights is None:
        return b1 * r1 * vector_geometry, b2 * r2 * vector_geometry, None, None
    competitors, label = classwise_parts(class_sq_weights)
    return b1 * r1 * competitors, b2 * r2 * competitors, b1 * r1 * label, b2 * r2 * label


def theorem53_bound_bounded_features(train_margin_loss: float, n: int, rho: float, delta: float, *,
                                     radius_penult: float, radius_final: float, num_outputs: int,
                                     feature_norm_bound: float | tuple[float, float] = 1.0, norm: str = "row",
                                     grid_size: int = 1, num_classes: int = 1,
                                     class_sq_weights: Sequence[float] | None = None) -> BoundTerms:
    """A tighter proved form of Theorem 5.3 / Corollary 5.4 when feature norms are bounded a.s. (not THEORY's).

    If ``||psi_1(x)|| <= r_1`` and ``||psi_2(x)|| <= r_2`` for every x (cosine heads: r = 1), then, w.p.
    ``>= 1 - delta``, for every f in F_{N-1} + F_N::

        P(error) <= R_hat_{S,rho}(f) + (4/rho) (B_1 r_1 + B_2 r_2) c_K / sqrt(n) + sqrt(ln(K m / delta) / (2 n))

    with ``c_K = K`` for the row norm and ``sqrt(K)`` for the Frobenius norm.

    Proof. Mohri et al. (Foundations of ML, 2nd ed., Thm 3.3, eq. 3.3) give, for G with values in [0, 1],
    w.p. >= 1 - delta: ``E g <= E_hat g + 2 R_n(G) + sqrt(ln(1/delta)/(2n))`` with the *expected* complexity
    ``R_n(G) = E_S R_hat_S(G)``. Lemma 5.2(b) gives ``R_hat_S(G) <= (2/rho) R_hat^v_S(F)`` for every S,
    Lemma 5.1 splits F, and Lemma 5.2(a) with ``sum_i ||psi_i||^2 <= n r^2`` gives
    ``R_hat^v_S(W_row(B)) <= B K r / sqrt(n)`` (``B sqrt(K) r / sqrt(n)`` for the Frobenius ball) for every
    S, hence also in expectation. Union over the m grid points and K classes (each at ``delta/(K m)``),
    and ``1{error} <= Phi_rho(M)``, finish the proof. The statement needs the norm bound for *every* x
    (not only the sample), which cosine heads guarantee.

    With ``class_sq_weights`` (row norm only; ``a_c = n_c/n^2`` for the sample, ``1/n_c`` at class c and 0 elsewhere
    for S_c) the class-wise contraction replaces Lemma 5.2(b): complexity ``(2/rho)(B_1 r_1 + B_2 r_2)
    sum_c (sqrt(a_c) + sqrt(A - a_c))`` (:func:`classwise_geometry`; THEORY §8, proofs/classwise_contraction.md).
    """
    e = check_unit_mean(train_margin_loss, "train_margin_loss")
    n = check_count(n, "n")
    rho = check_positive(rho, "rho")
    delta = check_delta(delta)
    b1 = check_nonneg(radius_penult, "radius_penult")
    b2 = check_nonneg(radius_final, "radius_final")
    k_out = check_count(num_outputs, "num_outputs")
    check_norm(norm)
    m = check_count(grid_size, "grid_size")
    k = check_count(num_classes, "num_classes")
    if isinstance(feature_norm_bound, (tuple, list)):
        r1, r2 = (check_nonneg(v, "feature_norm_bound") for v in feature_norm_bound)
    else:
        r1 = r2 = check_nonneg(feature_norm_bound, "feature_norm_bound")
    c_k = k_out if norm == "row" else math.sqrt(k_out)
    if class_sq_weights is not None and norm != "row":
        raise ValueError("the class-wise contraction is implemented for the row norm only.")
    rc1, rc2, label1, label2 = _bounded_parts(b1, b2, r1, r2, c_k / math.sqrt(n), class_sq_weights)
    complexity = _margin_complexity(rho, rc1, rc2, label1, label2)
    conf = math.sqrt(math.log(k * m / delta) / (2.0 * n))
    total = e + complexity + conf
    statement = "Theorem 5.3 (bounded features)" if k == 1 else "Corollary 5.4 (bounded features)"
    return BoundTerms(train_margin_loss=e, complexity=complexity, confidence=conf, bound=total,
                      vacuous=bool(total > 1.0), rho=rho, delta=delta, n=n, grid_size=m, num_classes=k,
                      rc_penult=rc1, rc_final=rc2, radius_penult=b1, radius_final=b2, statement=statement,
                      label_penult=label1, label_final=label2)


def _as_margins(margins_or_scores: Any, labels: Any = None) -> np.ndarray:
    if labels is not None:
        return np.asarray(_margins(margins_or_scores, labels), dtype=np.float64)
    m = np.asarray(margins_or_scores, dtype=np.float64)
    if m.ndim != 1:
        raise ValueError(f"margins must be 1-D, got shape {m.shape}.")
    if not np.isfinite(m).all():
        raise ValueError("margins contain NaN or infinite values.")
    return m


def theorem53_grid_bound(margins: Any, rc_penult_unit: float, rc_final_unit: float, delta: float,
                         grid: BoundGrid, radius_penult: float, radius_final: float,
                         label_unit: tuple[float, float] | None = None) -> GridBoundResult:
    """Theorem 5.3 over the grid of THEORY §4: ``min`` over covering points of the bound at ``delta/m``.

    ``bound(rho, B_1, B_2) = R_hat_{S,rho}(f) + (4/rho)(B_1 r_1 + B_2 r_2) + 3 sqrt(ln(2m/delta)/(2n))``
    with ``r_j = R_hat^v_S(W(1))`` the unit-radius upper values (Lemma 5.1 scaling: ``R_hat(W(B)) =
    B R_hat(W(1))``).

    Parameters
    ----------
    margins : 1-D array
        ``M_f(x_i, y_i)`` of the trained scorer on S (see :func:`scilt_theory.losses.margins`).
    rc_penult_unit, rc_final_unit : float
        Upper values of ``R_hat^v_S`` of the unit-radius classes.
    radius_penult, radius_final : float
        Class radii when the grid has no radii axis, else the trained weights' norms to be covered.
    label_unit : (float, float), optional
        Unit-radius label parts of the class-wise contraction (THEORY §8): with them the complexity is
        ``(2/rho)(B_1 (r_1 + l_1) + B_2 (r_2 + l_2))`` instead of Lemma 5.2(b)'s ``(4/rho)(B_1 r_1 + B_2 r_2)``.
    """
    m = _as_margins(margins)
    n = m.shape[0]
    if n == 0:
        raise ValueError("Theorem 5.3 needs a non-empty sample (n = 0).")
    r1, r2 = check_nonneg(rc_penult_unit, "rc_penult_unit"), check_nonneg(rc_final_unit, "rc_final_unit")
    delta = check_delta(delta)

    def at(p: GridPoint) -> BoundTerms:
        emp = float(np.mean(ramp_loss(m, p.rho)))
        labels = (None, None) if label_unit is None else (p.radius_penult * label_unit[0],
                                                          p.radius_final * label_unit[1])
        return _margin_bound("Theorem 5.3", emp, p.radius_penult * r1, p.radius_final * r2, n, p.rho, delta,
                             grid.size, 1, p.radius_penult, p.radius_final, *labels)

    return grid_evaluate(at, grid, radius_penult, radius_final)
