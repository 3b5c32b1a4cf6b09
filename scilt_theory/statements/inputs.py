"""The typed inputs of the bounds (THEORY §1, §4, §5): the sample, the hypothesis class with the trained scorer, and
the estimation settings. build_context validates them; nothing here computes anything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scilt_theory.grid import BoundGrid

__all__ = ["Estimation", "Hypothesis", "Sample"]


@dataclass(frozen=True)
class Sample:
    """The bound sample S: the fused model's features ψ₁, ψ₂ (n, d), its scores (n, K) and the labels, with the K
    classes' names and groups (given, or from the training ``class_counts`` and the Many/Few thresholds)."""

    psi_penult: Any
    psi_final: Any
    scores: Any
    labels: Any
    num_classes: int
    class_names: Sequence[str] | None = None
    class_groups: Sequence[str] | Mapping[int, str] | None = None
    class_counts: Sequence[int] | None = None
    many_threshold: int = 100
    few_threshold: int = 20


@dataclass(frozen=True)
class Hypothesis:
    """The class the scorer lies in and the trained scorer.

    ``radius_*``: the radii B₁, B₂ of F_{N-1} + F_N (cosine heads: (2s, s)), or, where the grid declares radii, the
    trained norms a grid radius must cover; ``class_radii``: (B₁, B₂) fixed before the data, the only radii the
    data-dependent radii grid is built from; ``norm``: row | frobenius; ``feature_norm_bound``: r with ‖ψ(x)‖ <= r
    for every x (cosine heads: 1); ``head_weights``: (U, V) with scores = ψ₁Uᵀ + ψ₂Vᵀ; ``prior_head_weights``:
    (U₀, V₀) fixed before S (a PAC-Bayes prior centre); ``scale``: the cosine scale s; ``coupled_scale``: s when the
    scorer lies in the coupled SciLT class H_s."""

    radius_penult: float
    radius_final: float
    norm: str = "row"
    class_radii: tuple[float, float] | None = None
    feature_norm_bound: float | None = None
    head_weights: tuple[Any, Any] | None = None
    prior_head_weights: tuple[Any, Any] | None = None
    scale: float | None = None
    coupled_scale: float | None = None


@dataclass(frozen=True)
class Estimation:
    """How the bounds are computed: the grid fixed before the data, δ of each statement, the complexity estimator
    (rademacher.select_estimator), its draws, δ_mc and seed, the device it runs on, and the validity regime
    (statements.context.VALIDITY)."""

    grid: BoundGrid
    delta: float = 0.05
    method: str = "auto"
    n_draws: int = 1000
    delta_mc: float = 0.01
    seed: int = 0
    device: Any = None
    validity: str = "diagnostic"
