"""The declared-constraint mechanism (scilt_theory/constraints.py) and the options built from it."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import pytest

from experiments._cli import OneLineParser, add_dataclass_options, dataclass_from_args
from scilt_theory.constraints import Boolean, Choice, Interval, NoneOr, Text, TupleOf, check_fields, option


@pytest.mark.parametrize("constraint,good,bad", [
    (Interval(int, 1, None), [1, 2, 10**9], [0, -1, 1.0, True, "1", None]),
    (Interval(float, 0, 1, closed="neither"), [1e-9, 0.5, 1 - 1e-12], [0, 1, 1.0, 0.0, math.nan, math.inf, True]),
    (Interval(float, 0, 1, closed="left"), [0, 0.0, 0.999], [1, 1.0, -1e-12]),
    (Interval(float, 0, 1, closed="right"), [1.0, 1e-9], [0.0]),
    (Interval(float, None, None), [-1e300, 0, 3], [math.nan, -math.inf, "x"]),
    (Choice(("sgd", "adamw")), ["sgd", "adamw"], ["SGD", "", None]),
    (Choice((1, 2)), [1, 2], [3, True, "1"]),
    (Text(), ["a", "x y"], ["", "  ", None, 3]),
    (Boolean(), [True, False], [0, 1, "true", None]),
    (NoneOr(Interval(int, 0, None)), [None, 0, 5], [-1, 0.5]),
    (TupleOf(Text()), [("a",), ("a", "b")], [(), ["a"], ("a", ""), "a"]),
])
def test_constraints_accept_exactly_their_values(constraint, good, bad):
    # the interval endpoints are checked on both sides: halving the interval or opening it fails a case above
    assert all(constraint.accepts(v) for v in good), [v for v in good if not constraint.accepts(v)]
    assert not any(constraint.accepts(v) for v in bad), [v for v in bad if constraint.accepts(v)]


@pytest.mark.parametrize("constraint,text", [
    (Interval(int, 1, None), "an integer >= 1"),
    (Interval(int, 0, None, closed="neither"), "an integer > 0"),
    (Interval(float, 0, 1, closed="neither"), "a number in (0, 1)"),
    (Interval(float, 0, 1, closed="left"), "a number in [0, 1)"),
    (Interval(float, None, 1), "a number <= 1"),
    (Choice(("a", "b")), "one of 'a', 'b'"),
    (NoneOr(Interval(int, 2, None)), "none or an integer >= 2"),
    (NoneOr(Interval(float, 0, None, closed="neither"), word="auto"), "auto or a number > 0"),
    (TupleOf(Text()), "a tuple of at least 1 of non-empty string values"),
])
def test_descriptions_read_as_a_sentence(constraint, text):
    assert constraint.describe() == text


@dataclass(frozen=True)
class _Toy:
    epochs: int = option(3, "passes", Interval(int, 1, None))
    rate: float = option(0.5, "a rate", Interval(float, 0, 1, closed="neither"))
    kind: str = option("a", "which kind", Choice(("a", "b")))
    flag: bool = option(False, "a switch")
    free: str = option("x", "not checked")

    def __post_init__(self) -> None:
        check_fields(self)


def test_check_fields_names_the_field_and_what_it_accepts():
    _Toy()
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got 0$"):
        _Toy(epochs=0)
    with pytest.raises(ValueError, match=r"^rate must be a number in \(0, 1\), got 1\.0$"):
        _Toy(rate=1.0)
    with pytest.raises(ValueError, match=r"^kind must be one of 'a', 'b', got 'c'$"):
        _Toy(kind="c")
    with pytest.raises(ValueError, match=r"^flag must be true or false, got 1$"):
        _Toy(flag=1)
    _Toy(free="")  # no constraint declared: nothing checked


def test_options_are_generated_from_the_constraints(capsys):
    parser = OneLineParser(prog="toy")
    add_dataclass_options(parser, _Toy, title="toy")
    help_text = parser.format_help()
    assert "a number in (0, 1)" in help_text and "an integer >= 1" in help_text and "{a,b}" in help_text
    args = parser.parse_args(["--epochs", "4", "--kind", "b", "--flag"])
    assert dataclass_from_args(_Toy, args) == _Toy(epochs=4, kind="b", flag=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--kind", "c"])  # refused by argparse's choices, before the dataclass
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(Exception, match="rate must be a number in"):
        dataclass_from_args(_Toy, argparse.Namespace(**{"_Toy.rate": 0.0}))


def _configs():
    from scilt_theory.bounds_pipeline import BoundsSettings
    from scilt_theory.car import CARConfig
    from scilt_theory.data import DataConfig
    from scilt_theory.h2t import H2TConfig
    from scilt_theory.methods import MethodConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig

    return [DataConfig, ModelConfig, TrainConfig, CARConfig, H2TConfig, MethodConfig, BoundsSettings]


@pytest.mark.parametrize("config", _configs(), ids=lambda c: c.__name__)
def test_every_config_field_declares_its_constraint_and_help(config):
    import dataclasses

    from scilt_theory.constraints import constraint_of

    for f in dataclasses.fields(config):
        assert f.metadata.get("help"), f"{config.__name__}.{f.name} has no help text"
        assert constraint_of(f) is not None, f"{config.__name__}.{f.name} declares no constraint"
        if f.default is not dataclasses.MISSING:  # the declared default is itself accepted
            assert constraint_of(f).accepts(f.default), f"{config.__name__}.{f.name} default {f.default!r}"


# ---- the argument checks of functions (one set for every module) ---------------------------------------------------

@pytest.mark.parametrize("check, args, value, message", [
    ("check_finite", ("x",), "a", "x must be a number, got 'a'."),
    ("check_finite", ("x",), True, "x must be a number, got True."),
    ("check_finite", ("x",), float("nan"), "x must be finite, got nan."),
    ("check_nonneg", ("radius",), -1.0, "radius must be >= 0, got -1.0."),
    ("check_positive", ("rho",), 0.0, "rho must be positive, got 0.0."),
    ("check_delta", (), 1.0, "delta must lie strictly between 0 and 1, got 1.0."),
    ("check_delta", ("delta_mc",), 0, "delta_mc must lie strictly between 0 and 1, got 0.0."),
    ("check_unit_mean", ("loss",), 1.5, "loss must lie in [0, 1] (it is a mean of losses in [0, 1]), got 1.5."),
    ("check_count", ("n",), 2.5, "n must be an integer, got 2.5."),
    ("check_count", ("n",), 0, "n must be >= 1, got 0."),
    ("check_count", ("n",), True, "n must be an integer, got True."),
    ("check_choice", ("norm", ("row", "frobenius")), "spectral",
     "norm must be one of ('row', 'frobenius'), got 'spectral'."),
])
def test_argument_checks_name_the_argument_in_one_sentence(check, args, value, message):
    import re

    from scilt_theory import constraints

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        getattr(constraints, check)(value, *args)


def test_argument_checks_return_the_cleaned_value():
    import numpy as np

    from scilt_theory.constraints import Interval, check_count, check_delta, check_finite, check_matrix, check_value

    assert check_count(np.int64(3), "n") == 3 and type(check_count(3.0, "n")) is int
    assert check_count(0, "n", 0) == 0
    assert check_delta(np.float32(0.5)) == 0.5 and type(check_finite(np.float64(2), "x")) is float
    assert check_value(0.25, "rho", Interval(float, 0.0, 1.0)) == 0.25
    with pytest.raises(ValueError, match=r"^rho must be a number in \[0, 1\], got 1.5\.$"):
        check_value(1.5, "rho", Interval(float, 0.0, 1.0))
    arr = check_matrix([[1, 2], [3, 4]], "psi", n=2)
    assert arr.dtype == np.float64 and arr.shape == (2, 2)
    with pytest.raises(ValueError, match="psi has 2 rows but the sample has 3 examples"):
        check_matrix(arr, "psi", n=3)
    with pytest.raises(ValueError, match="NaN"):
        check_matrix([[np.nan]], "psi")
