"""The finite grid of THEORY §4 over the margin parameter and the radii, fixed before seeing the sample.

A statement evaluated at every point of a grid of ``m`` points, each at ``delta/m``, holds for all points at once,
so the smallest value over the points whose radii cover the trained weights is a valid bound
(:func:`grid_evaluate`). The formulas evaluated at a point are those of scilt_theory/bounds.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scilt_theory.codec import to_jsonable
from scilt_theory.constraints import check_count, check_finite, check_nonneg

if TYPE_CHECKING:  # the terms of one point: a record of the formulas' module, which builds on this one
    from scilt_theory.bounds import BoundTerms

__all__ = ["BoundGrid", "GridBoundResult", "GridPoint", "grid_evaluate"]


def _positive_tuple(values: Any, name: str) -> tuple[float, ...]:
    if values is None:
        raise ValueError(f"{name} must be a non-empty sequence of positive numbers.")
    try:
        vals = tuple(check_finite(v, name) for v in values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive numbers, got {values!r}.") from None
    if not vals:
        raise ValueError(f"{name} must not be empty.")
    if any(v <= 0 for v in vals):
        raise ValueError(f"every value of {name} must be positive, got {vals}.")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{name} must not repeat values (a repeated point only enlarges the grid size m).")
    return tuple(sorted(vals))


def _geometric(lo: float, hi: float, num: int, name: str) -> tuple[float, ...]:
    lo, hi = check_finite(lo, f"{name}_min"), check_finite(hi, f"{name}_max")
    num = check_count(num, "num")
    if lo <= 0 or hi < lo:
        raise ValueError(f"need 0 < {name}_min <= {name}_max, got {lo} and {hi}.")
    if num == 1:
        if lo != hi:
            raise ValueError(f"a grid with one point needs {name}_min == {name}_max.")
        return (lo,)
    if lo == hi:
        raise ValueError(f"a grid with {num} points needs {name}_min < {name}_max.")
    return tuple(float(v) for v in np.geomspace(lo, hi, num))


@dataclass(frozen=True)
class GridPoint:
    """One point (rho, B_1, B_2) of a :class:`BoundGrid`; radii are None when fixed outside the grid."""

    rho: float
    radius_penult: float | None = None
    radius_final: float | None = None


@dataclass(frozen=True)
class BoundGrid:
    """The finite grid of THEORY §4, fixed BEFORE seeing the sample.

    Grid points are ``(rho, B_1, B_2)``; the radii axes are optional (cosine heads know their radii,
    THEORY §1; linear heads need them). With ``m = |rhos| * |radii_penult| * |radii_final|`` points, every
    point is evaluated at ``delta/m`` (the confidence term becomes ``3 sqrt(ln(2 K m/delta)/(2n))``) and the
    smallest value over the points whose radii cover the trained weights is a valid bound.
    """

    rhos: tuple[float, ...] = field(metadata={"help": "margin parameters rho > 0"})
    radii_penult: tuple[float, ...] | None = field(
        default=None, metadata={"help": "radii B_1 of F_{N-1} (None: the radius is fixed outside the grid)"})
    radii_final: tuple[float, ...] | None = field(
        default=None, metadata={"help": "radii B_2 of F_N (None: the radius is fixed outside the grid)"})
    radii_pairs: tuple[tuple[float, float], ...] | None = field(
        default=None, metadata={"help": "radii (B_1, B_2) given as pairs instead of two axes (e.g. one per interval "
                                        "of the fusion weight α); m = |rhos| · |pairs|"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "rhos", _positive_tuple(self.rhos, "rhos"))
        for name in ("radii_penult", "radii_final"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _positive_tuple(value, name))
        if self.radii_pairs is not None:
            if self.radii_penult is not None or self.radii_final is not None:
                raise ValueError("give the radii either as axes or as pairs, not both.")
            try:
                pairs = tuple((check_finite(a, "radii_pairs"), check_finite(b, "radii_pairs"))
                              for a, b in self.radii_pairs)
            except (TypeError, ValueError):
                raise ValueError(f"radii_pairs must be a sequence of (B_1, B_2) pairs, got {self.radii_pairs!r}."
                                 ) from None
            if not pairs or any(a < 0 or b < 0 for a, b in pairs) or len(set(pairs)) != len(pairs):
                raise ValueError("radii_pairs must be distinct non-negative (B_1, B_2) pairs, at least one.")
            object.__setattr__(self, "radii_pairs", pairs)

    @classmethod
    def geometric(cls, rho_min: float, rho_max: float, num: int, *, radii_penult: Sequence[float] | None = None,
                  radii_final: Sequence[float] | None = None) -> BoundGrid:
        """``num`` rho values spaced geometrically in ``[rho_min, rho_max]`` (``numpy.geomspace``)."""
        return cls(rhos=_geometric(rho_min, rho_max, num, "rho"), radii_penult=radii_penult,
                   radii_final=radii_final)

    @staticmethod
    def geometric_values(lo: float, hi: float, num: int) -> tuple[float, ...]:
        """Helper for radii axes: ``num`` values spaced geometrically in ``[lo, hi]``."""
        return _geometric(lo, hi, num, "value")

    @property
    def size(self) -> int:
        """``m``, the number of grid points paid for in the confidence term."""
        if self.radii_pairs is not None:
            return len(self.rhos) * len(self.radii_pairs)
        return (len(self.rhos) * (len(self.radii_penult) if self.radii_penult else 1)
                * (len(self.radii_final) if self.radii_final else 1))

    def points(self) -> Iterator[GridPoint]:
        if self.radii_pairs is not None:
            for b1, b2 in self.radii_pairs:
                for rho in self.rhos:
                    yield GridPoint(rho, b1, b2)
            return
        for b1 in self.radii_penult or (None,):
            for b2 in self.radii_final or (None,):
                for rho in self.rhos:
                    yield GridPoint(rho, b1, b2)

    def covering_points(self, radius_penult: float, radius_final: float) -> list[GridPoint]:
        """Points whose radii cover the given ones; a fixed (non-grid) radius is used as given.

        For a radius axis of the grid, ``radius_*`` is the trained weights' norm and a point qualifies
        when its grid radius is >= that norm; without the axis ``radius_*`` is the class radius itself.
        """
        b1, b2 = check_nonneg(radius_penult, "radius_penult"), check_nonneg(radius_final, "radius_final")
        out = []
        for p in self.points():
            if p.radius_penult is not None and p.radius_penult < b1:
                continue
            if p.radius_final is not None and p.radius_final < b2:
                continue
            out.append(GridPoint(p.rho, b1 if p.radius_penult is None else p.radius_penult,
                                 b2 if p.radius_final is None else p.radius_final))
        return out

    def to_dict(self) -> dict:
        return to_jsonable({"rhos": list(self.rhos), "radii_penult": self.radii_penult,
                       "radii_final": self.radii_final, "grid_size": self.size,
                       **({"radii_pairs": self.radii_pairs} if self.radii_pairs is not None else {})})


@dataclass(frozen=True)
class GridBoundResult:
    """The smallest bound over the covering grid points, plus every evaluated point (THEORY §4)."""

    best: BoundTerms = field(metadata={"help": "smallest bound over the covering points"})
    evaluated: tuple[BoundTerms, ...] = field(metadata={"help": "every covering point, in grid order"})
    grid_size: int = field(metadata={"help": "m"})

    @property
    def rho(self) -> float:
        return self.best.rho

    def to_dict(self) -> dict:
        return to_jsonable({"best": self.best, "chosen_rho": self.best.rho, "grid_size": self.grid_size,
                       "evaluated": list(self.evaluated)})


def grid_evaluate(terms_at: Callable[[GridPoint], BoundTerms], grid: BoundGrid, radius_penult: float,
                   radius_final: float) -> GridBoundResult:
    """The smallest of ``terms_at(point)`` over the points of ``grid`` that cover the radii (THEORY §4).

    Every point is paid for in ``grid.size``; a point whose radii are below the trained weights' norms is not a
    class that contains the trained scorer, so it is skipped. Refuses a grid with no covering point.
    """
    if not isinstance(grid, BoundGrid):
        raise ValueError(f"grid must be a BoundGrid, got {type(grid).__name__}.")
    points = grid.covering_points(radius_penult, radius_final)
    if not points:
        raise ValueError(
            f"no grid point covers the trained weights' norms (penultimate {radius_penult:g}, final "
            f"{radius_final:g}); the radii grid must be enlarged before seeing the data.")
    evaluated = tuple(terms_at(p) for p in points)
    best = min(evaluated, key=lambda t: t.bound)  # first minimum in grid order: deterministic
    return GridBoundResult(best=best, evaluated=evaluated, grid_size=grid.size)
