"""Data-dependent radii (THEORY §8; proofs/data_dependent_radii.md): the radii grid fixed before the data and the
mixin that evaluates a statement on it, covering the trained heads' largest row norms."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scilt_theory.grid import BoundGrid
from scilt_theory.statements.context import BoundContext

__all__ = ["FUSION_INTERVALS", "RADII_RATIO", "RADII_SPAN", "DataRadii", "FusionRadii", "data_radii_grid",
           "fusion_radii_grid", "trained_radii"]

#: the data-dependent radii grid: from the class radius B down to B/RADII_SPAN in steps of RADII_RATIO
RADII_RATIO = 2.0 ** 0.25
RADII_SPAN = 8.0


def _radii_axis(b: float) -> tuple[float, ...] | None:
    if b <= 0:
        return None  # a class radius of 0 (e.g. final-only's F_{N-1}) stays fixed at 0
    num = int(round(np.log(RADII_SPAN) / np.log(RADII_RATIO))) + 1
    return tuple(float(b) * RADII_RATIO ** -k for k in range(num))[::-1]


def data_radii_grid(ctx: BoundContext) -> BoundGrid:
    """(ρ, B₁, B₂): the context's ρ values times radii axes fixed before the data (they depend on the class radii
    only, which depend on s and the method)."""
    return BoundGrid(rhos=ctx.grid.rhos, radii_penult=_radii_axis(ctx.radius_penult),
                     radii_final=_radii_axis(ctx.radius_final))


def trained_radii(ctx: BoundContext) -> tuple[float, float]:
    """max_c ‖u_c‖, max_c ‖v_c‖ of the trained heads (0 for a fixed zero radius). A norm that exceeds its class
    radius by rounding only (unit rows times s) is the class radius, so that the top grid point covers it."""
    u, v = ctx.head_weights

    def largest(w: np.ndarray, radius: float) -> float:
        if radius <= 0:
            return 0.0
        b = float(np.linalg.norm(w, axis=1).max())
        return radius if radius < b <= radius * (1 + 1e-9) else b

    return largest(u, ctx.radius_penult), largest(v, ctx.radius_final)


class DataRadii:
    """Mixin: the statement on the data-dependent radii grid, covering the trained heads' norms."""

    theory: ClassVar[str] = "THEORY §8, tighter forms (data-dependent radii)"

    def applies(self, ctx: BoundContext) -> bool:
        if ctx.head_weights is None:
            return False
        b1, b2 = trained_radii(ctx)
        within = b1 <= ctx.radius_penult * (1 + 1e-9) and b2 <= ctx.radius_final * (1 + 1e-9)
        return within and super().applies(ctx)

    def grid_radii(self, ctx: BoundContext) -> tuple[BoundGrid, float, float]:
        b1, b2 = trained_radii(ctx)
        return data_radii_grid(ctx), b1, b2


#: the fusion-weight grid: [0, 1] cut into this many intervals of α, fixed before the data
FUSION_INTERVALS = 100


def fusion_radii_grid(ctx: BoundContext) -> BoundGrid:
    """(ρ, B₁, B₂) with one radii pair per interval [k/A, (k+1)/A] of α (A = FUSION_INTERVALS), for the SciLT
    class (two cosine heads of scale s, adaptive α): every α of the interval gives ‖u_c‖ <= s(1 + α) <= s(1 + (k+1)/A)
    and ‖v_c‖ = s(1 − α) <= s(1 − k/A) (proofs/method_radii.md), so B₁ + B₂ = s(2 + 1/A) against 3s for the class
    radii (2s, s). The pairs depend on s only."""
    s = float(ctx.coupled_scale)
    a = FUSION_INTERVALS
    return BoundGrid(rhos=ctx.grid.rhos, radii_pairs=tuple((s * (1 + (k + 1) / a), s * (1 - k / a)) for k in range(a)))


class FusionRadii:
    """Mixin: the statement on the fusion-weight radii grid (SciLT-form models only), covering the trained heads'
    largest row norms."""

    def applies(self, ctx: BoundContext) -> bool:
        if ctx.head_weights is None or ctx.coupled_scale is None:
            return False
        b1, b2 = trained_radii(ctx)
        return bool(fusion_radii_grid(ctx).covering_points(b1, b2)) and super().applies(ctx)

    def grid_radii(self, ctx: BoundContext) -> tuple[BoundGrid, float, float]:
        b1, b2 = trained_radii(ctx)
        return fusion_radii_grid(ctx), b1, b2
