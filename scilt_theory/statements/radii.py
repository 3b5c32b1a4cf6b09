"""The radii grids fixed before the data (THEORY §8): the data-dependent radii grid (proofs/data_dependent_radii.md)
and the fusion-weight grid (proofs/classwise_contraction.md), and the trained heads' largest row norms a grid point
must cover. The margin statements' radii axis (statements/margin.py) evaluates on them."""

from __future__ import annotations

import numpy as np

from scilt_theory.grid import BoundGrid
from scilt_theory.statements.context import BoundContext

__all__ = ["FUSION_INTERVALS", "RADII_RATIO", "RADII_SPAN", "data_radii_grid", "fusion_radii_grid", "trained_radii"]

#: the data-dependent radii grid: from the class radius B down to B/RADII_SPAN in steps of RADII_RATIO
RADII_RATIO = 2.0 ** 0.25
RADII_SPAN = 8.0


def _radii_axis(b: float) -> tuple[float, ...] | None:
    if b <= 0:
        return None  # a class radius of 0 (e.g. final-only's F_{N-1}) stays fixed at 0
    num = int(round(np.log(RADII_SPAN) / np.log(RADII_RATIO))) + 1
    return tuple(float(b) * RADII_RATIO ** -k for k in range(num))[::-1]


def data_radii_grid(ctx: BoundContext) -> BoundGrid:
    """(ρ, B₁, B₂): the context's ρ values times radii axes fixed before the data: they depend on the class radii
    ``ctx.class_radii`` only (s and the method, or the radii the grid declares), never on the trained norms a caller
    passes as ``radius_*`` (a radius chosen after seeing the data would not be paid for)."""
    b1, b2 = ctx.class_radii
    return BoundGrid(rhos=ctx.grid.rhos, radii_penult=_radii_axis(b1), radii_final=_radii_axis(b2))


def trained_radii(ctx: BoundContext) -> tuple[float, float]:
    """max_c ‖u_c‖, max_c ‖v_c‖ of the trained heads (0 for a fixed zero radius). A norm that exceeds its class
    radius by rounding only (unit rows times s) is the class radius, so that the top grid point covers it."""
    u, v = ctx.head_weights

    def largest(w: np.ndarray, radius: float) -> float:
        if radius <= 0:
            return 0.0
        b = float(np.linalg.norm(w, axis=1).max())
        return radius if radius < b <= radius * (1 + 1e-9) else b

    return largest(u, ctx.class_radii[0]), largest(v, ctx.class_radii[1])


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
