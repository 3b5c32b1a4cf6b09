"""The margin statements with the class-wise contraction in place of Lemma 5.2(b) (THEORY §8;
proofs/classwise_contraction.md).

Φ_ρ is (1/ρ)-Lipschitz, so Talagrand's scalar contraction takes the margin class itself; its complexity splits
row by row: every row c as the label row on the points of class c, and as a competitor on the points of the other
classes (a fixed value stands in for it on its own points, so the max over competitors is a max over all K rows).
For the row-norm class F_{N-1}(B₁) + F_N(B₂), with weights w_i constant on each class:

    Σ_c W_c err_c <= Σ_i w_i Φ_ρ(M_i) + (2/ρ) Σ_j B_j [𝔯ʷ_j + Σ_c W_c R̂ᵛ_{S_c}(W(1) ∘ ψ_j)/K] + (confidence as before),

against Lemma 5.2(b)'s (4/ρ) Σ_j B_j 𝔯ʷ_j: at most the same (each label part is at most 𝔯ʷ_j/K per row), and on a
one-class sample S_c (Corollary 5.4) exactly half of it. The bounded-features forms use the closed form
Σ_c (√a_c + √(A − a_c)), a_c = Σ_{i∈S_c} w_i² (bounds.classwise_geometry). Row norm only.

Registered here: the contract's three sample forms (overall, every class, the class-weighted targets) with the
class-wise contraction alone, and the same three with the bounded-features form on the data-dependent radii grid
(the combination that is tightest on the demo).
"""

from __future__ import annotations

from typing import ClassVar

from scilt_theory.statements.base import register_statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.margin import (
    Corollary54,
    Corollary54BoundedFeatures,
    Theorem53,
    Theorem53BoundedFeatures,
)
from scilt_theory.statements.radii import DataRadii, FusionRadii
from scilt_theory.statements.weighted import WeightedMargin, WeightedMarginBoundedFeatures

__all__ = ["CLASSWISE_STATEMENTS"]


class Classwise:
    """Mixin: the class-wise contraction in place of Lemma 5.2(b) (row norm only)."""

    classwise: ClassVar[bool] = True
    theory: ClassVar[str] = "THEORY §8, tighter forms (class-wise contraction)"

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.norm == "row" and super().applies(ctx)


class Theorem53Classwise(Classwise, Theorem53):
    """Theorem 5.3 with the class-wise contraction."""

    name = "theorem53_classwise"


class Corollary54Classwise(Classwise, Corollary54):
    """Corollary 5.4 with the class-wise contraction: half the complexity term of every class."""

    name = "corollary54_classwise"


class WeightedMarginClasswise(Classwise, WeightedMargin):
    """The class-weighted statement with the class-wise contraction."""

    name = "weighted_margin_classwise"


class Theorem53ClasswiseBoundedDataRadii(Classwise, DataRadii, Theorem53BoundedFeatures):
    """Theorem 5.3: class-wise contraction, bounded features, data-dependent radii."""

    name = "theorem53_classwise_bounded_data_radii"


class Corollary54ClasswiseBoundedDataRadii(Classwise, DataRadii, Corollary54BoundedFeatures):
    """Corollary 5.4: class-wise contraction, bounded features, data-dependent radii."""

    name = "corollary54_classwise_bounded_data_radii"


class WeightedMarginClasswiseBoundedDataRadii(Classwise, DataRadii, WeightedMarginBoundedFeatures):
    """The class-weighted statement: class-wise contraction, bounded features, data-dependent radii."""

    name = "weighted_margin_classwise_bounded_data_radii"


class Theorem53ClasswiseBoundedFusionRadii(Classwise, FusionRadii, Theorem53BoundedFeatures):
    """Theorem 5.3: class-wise contraction, bounded features, radii from the fusion-weight grid (SciLT form)."""

    name = "theorem53_classwise_bounded_fusion_radii"


class Corollary54ClasswiseBoundedFusionRadii(Classwise, FusionRadii, Corollary54BoundedFeatures):
    """Corollary 5.4: class-wise contraction, bounded features, radii from the fusion-weight grid (SciLT form)."""

    name = "corollary54_classwise_bounded_fusion_radii"


class WeightedMarginClasswiseBoundedFusionRadii(Classwise, FusionRadii, WeightedMarginBoundedFeatures):
    """The class-weighted statement: class-wise contraction, bounded features, fusion-weight radii (SciLT form)."""

    name = "weighted_margin_classwise_bounded_fusion_radii"


CLASSWISE_STATEMENTS = tuple(register_statement(cls()) for cls in (
    Theorem53Classwise, Corollary54Classwise, WeightedMarginClasswise, Theorem53ClasswiseBoundedDataRadii,
    Corollary54ClasswiseBoundedDataRadii, WeightedMarginClasswiseBoundedDataRadii,
    Theorem53ClasswiseBoundedFusionRadii, Corollary54ClasswiseBoundedFusionRadii,
    WeightedMarginClasswiseBoundedFusionRadii))
