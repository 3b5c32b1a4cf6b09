"""The one record of an empirical Rademacher complexity (ERC) estimate (THEORY §2, §5).

Every estimator of scilt_theory/rademacher.py returns it, the formulas of scilt_theory/bounds.py (Lemma 5.1) scale
and add it, and bounds.json writes it (``schema.Erc``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from scilt_theory.codec import to_jsonable
from scilt_theory.constraints import check_finite

__all__ = ["ErcSummary", "finite_or_none"]


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when finite, else None (None stays None): how an optional number is carried."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


@dataclass(frozen=True)
class ErcSummary:
    """An empirical Rademacher complexity: the estimate and the valid values the bounds use.

    ``upper`` is a valid upper value (closed form, exact, or min(closed, certified MC); THEORY §5) and is what enters
    every bound; ``value`` is the estimate (exact value or MC mean; the closed-form upper value for "closed") and
    ``stderr`` its standard error (0 for exact/closed, NaN for one draw, None when unknown); ``lower`` the
    Khintchine-Kahane lower value of THEORY §3a where known (= value for exact).
    """

    value: float | None = field(metadata={"help": "estimate: exact value or MC mean (None if only bounds)"})
    upper: float = field(metadata={"help": "valid upper value used in the bounds"})
    stderr: float | None = field(default=None, metadata={"help": "standard error of value (MC)"})
    lower: float | None = field(default=None, metadata={"help": "valid lower value (envelope or exact)"})
    method: str = field(default="given", metadata={"help": "closed | mc | exact | cvxpy | sum | given"})
    n: int | None = field(default=None, metadata={"help": "number of samples the ERC is taken on"})
    num_outputs: int | None = field(default=None, metadata={"help": "K, outputs of the linear class"})
    norm: str | None = field(default=None, metadata={"help": "frobenius | row"})
    radius: float | None = field(default=None, metadata={"help": "radius B of the norm ball"})
    n_draws: int | None = field(default=None, metadata={"help": "MC sign draws (None unless MC)"})
    delta_mc: float | None = field(default=None, metadata={"help": "failure probability of the MC certificate"})

    def __post_init__(self) -> None:
        check_finite(self.upper, "upper")

    @classmethod
    def from_result(cls, result: Any) -> ErcSummary:
        """The record as the bounds carry it, from a record or its ``to_dict()``: a finite upper value, and the sign
        draws and the certificate's failure probability only for a certified Monte Carlo value (method "mc")."""
        upper = finite_or_none(_get(result, "upper"))
        if upper is None:
            raise ValueError("a Rademacher result without a finite upper value cannot enter a bound.")
        if upper < 0:  # the ERC (no absolute value) is >= 0 for every class; an estimate may round below
            raise ValueError(f"a Rademacher upper value must be >= 0 to enter a bound, got {upper}.")
        n_draws = _get(result, "n_draws")
        method = str(_get(result, "method", "given"))
        return cls(value=finite_or_none(_get(result, "value")), upper=upper,
                   stderr=finite_or_none(_get(result, "stderr")), lower=finite_or_none(_get(result, "lower")),
                   method=method, n=_get(result, "n"), num_outputs=_get(result, "num_outputs"),
                   norm=_get(result, "norm"), radius=finite_or_none(_get(result, "radius")),
                   n_draws=int(n_draws) if (n_draws is not None and method == "mc") else None,
                   delta_mc=finite_or_none(_get(result, "delta_mc")) if method == "mc" else None)

    def to_dict(self) -> dict:
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})
