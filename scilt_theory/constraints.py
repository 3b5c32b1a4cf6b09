"""Declared constraints of config fields, written beside the help text and checked by one function.

After scikit-learn's ``_parameter_constraints`` (e.g. ``Interval(Real, 0, None, closed="neither")``), but kept in
the dataclass field's metadata so that the help text, the constraint, the command-line option and the error
message come from one place::

    @dataclass(frozen=True)
    class TrainConfig:
        epochs: int = option(20, "number of passes over the training set", Interval(int, 1, None))

        def __post_init__(self) -> None:
            check_fields(self)          # every declared constraint, one sentence per bad value
            ...                         # only the checks that combine fields stay here

A bad value raises ``ValueError("epochs must be an integer >= 1, got 0")``. ``experiments/_cli.py`` reads the same
metadata to build each option (choices, help text with the accepted range).

Function arguments get the same treatment from the ``check_*`` functions below (scikit-learn's ``validate_params``
for functions): one set, used by every module, each returning the cleaned value or raising one sentence that names
the argument.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Boolean", "Choice", "Constraint", "InstanceOf", "Interval", "NoneOr", "Text", "TupleOf", "check_choice",
           "check_count", "check_delta", "check_fields", "check_finite", "check_matrix", "check_nonneg",
           "check_positive", "check_unit_mean", "check_value", "constraint_of", "is_integer", "is_real", "option"]


class Constraint:
    """What a field accepts: ``accepts(value)`` and a phrase for messages, ``describe()`` ("an integer >= 1")."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``kind`` (int or float) in an interval; ``None`` leaves that side open to infinity.

    ``closed`` is "both", "left", "right" or "neither", as in scikit-learn. Floats must be finite; ints must
    be integers (``True`` is not an integer here). An int is accepted where a float is asked for.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def __post_init__(self) -> None:
        if self.kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float, got {self.kind!r}")
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {self.closed!r}")

    def accepts(self, value: Any) -> bool:
        if not (is_integer(value) if self.kind is int else is_real(value)):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not right)))

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return noun if self.kind is int else "a finite number"
        if self.high is None:
            return f"{noun} {'>=' if left else '>'} {_fmt(self.low)}"
        if self.low is None:
            return f"{noun} {'<=' if right else '<'} {_fmt(self.high)}"
        return f"{noun} in {'[' if left else '('}{_fmt(self.low)}, {_fmt(self.high)}{']' if right else ')'}"


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed set of values (strings, or ints such as ``heads`` in {1, 2})."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return not isinstance(value, bool) and value in self.values

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Text(Constraint):
    """A string; non-empty (after stripping) unless ``allow_empty``."""

    allow_empty: bool = False

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and (self.allow_empty or bool(value.strip()))

    def describe(self) -> str:
        return "a string" if self.allow_empty else "a non-empty string"


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of ``kind`` (a nested config, e.g. MethodConfig.car is a CARConfig)."""

    kind: type

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.kind)

    def describe(self) -> str:
        return f"a {self.kind.__name__}"


@dataclass(frozen=True)
class NoneOr(Constraint):
    """None, or a value the inner constraint accepts. ``word`` is how None is spelled on the command line and in
    messages (e.g. "auto" for a margin chosen from the grid)."""

    inner: Constraint
    word: str = "none"

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)

    def describe(self) -> str:
        return f"{self.word} or {self.inner.describe()}"


@dataclass(frozen=True)
class TupleOf(Constraint):
    """A tuple of at least ``min_len`` items, each accepted by ``item``."""

    item: Constraint
    min_len: int = 1

    def accepts(self, value: Any) -> bool:
        return isinstance(value, tuple) and len(value) >= self.min_len and all(self.item.accepts(v) for v in value)

    def describe(self) -> str:
        many = "a tuple" if self.min_len == 0 else f"a tuple of at least {self.min_len}"
        return f"{many} of {self.item.describe().removeprefix('a ').removeprefix('an ')} values"


def option(default: Any, help: str, constraint: Constraint | None = None, **field_kwargs: Any) -> Any:
    """A dataclass field with its help text and its constraint in the metadata (bools get :class:`Boolean`)."""
    if constraint is None and isinstance(default, bool):
        constraint = Boolean()
    metadata = {"help": help, "constraint": constraint}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata, **field_kwargs)
    return dataclasses.field(default=default, metadata=metadata, **field_kwargs)


def constraint_of(f: dataclasses.Field) -> Constraint | None:
    """The constraint declared on a dataclass field (None when it declares none)."""
    return f.metadata.get("constraint")


def check_fields(obj: Any) -> None:
    """Check every field of the dataclass instance ``obj`` against its declared constraint.

    Raises
    ------
    ValueError
        ``"<field> must be <what it accepts>, got <value>"`` for the first field that fails.
    """
    for f in dataclasses.fields(obj):
        constraint = constraint_of(f)
        if constraint is None:
            continue
        value = getattr(obj, f.name)
        if not constraint.accepts(value):
            raise ValueError(f"{f.name} must be {constraint.describe()}, got {value!r}")


def check_value(value: Any, name: str, constraint: Constraint) -> Any:
    """``value`` if ``constraint`` accepts it, else ``ValueError("<name> must be <what it accepts>, got <value>.")``."""
    if not constraint.accepts(value):
        raise ValueError(f"{name} must be {constraint.describe()}, got {value!r}.")
    return value


# ----------------------------------------------------------------------------------------------------------
# Checks of function arguments: each returns the cleaned value or raises one sentence naming the argument
# ----------------------------------------------------------------------------------------------------------

def check_finite(value: Any, name: str) -> float:
    """A finite number as a float (anything ``float()`` takes, except a bool)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}.")
    return out


def check_nonneg(value: Any, name: str) -> float:
    """A finite number >= 0."""
    v = check_finite(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}.")
    return v


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0 (a margin parameter rho, a scale, a temperature)."""
    v = check_finite(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {v}.")
    return v


def check_delta(delta: Any, name: str = "delta") -> float:
    """A failure probability: a number strictly between 0 and 1."""
    d = check_finite(delta, name)
    if not 0.0 < d < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {d}.")
    return d


def check_unit_mean(value: Any, name: str) -> float:
    """A mean of losses with values in [0, 1], hence itself in [0, 1]."""
    v = check_finite(value, name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (it is a mean of losses in [0, 1]), got {v}.")
    return v


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (an integral float such as 3.0 is taken as 3)."""
    if not is_integer(value):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return value


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """One of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")
    return value


def check_matrix(values: Any, name: str, n: int | None = None, shape: str = "(n, d)") -> np.ndarray:
    """A finite real 2-D array (numpy, or a tensor moved to the host) as float64, with ``n`` rows if given."""
    arr = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape {shape}, got shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"{name} must contain real numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or infinite values.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the sample has {n} examples.")
    return arr
