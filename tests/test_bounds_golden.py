"""Every registered statement's numbers on the stored fixture features, pinned before the statements were composed
from axes (issue 23): the same (name, target) records, every number (bound, floor, n_for_nonvacuous, δ, every term)
to 1e-12, the same δ_mc accounting, for the full registry and for a few smaller selections.

tests/fixtures/bounds_golden/make.py wrote the snapshot (records_<mode>.json) and the head weights it used (heads.pt);
the inputs are rebuilt here by the same function, so only the statements' code can change a number.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from scilt_theory.statements import STATEMENTS, fused_model_bounds

GOLDEN = Path(__file__).parent / "fixtures" / "bounds_golden"
REL = 1e-12


def _make():
    spec = importlib.util.spec_from_file_location("bounds_golden_make", GOLDEN / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _make()


def _close(a, b, where: str) -> None:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
        assert a == b, f"{where}: golden {a!r} != now {b!r}"
    elif isinstance(a, (int, float)):
        assert isinstance(b, (int, float)), f"{where}: golden {a!r} != now {b!r}"
        assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-15), f"{where}: golden {a!r} != now {b!r}"
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ ({len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), \
            f"{where}: keys differ (golden only {sorted(set(a) - set(b))}, now only {sorted(set(b) - set(a))})"
        for k, v in a.items():
            _close(v, b[k], f"{where}.{k}")
    else:  # pragma: no cover
        raise AssertionError(f"{where}: unexpected {type(a).__name__}")


def _inputs(mode: str):
    heads = {m: tuple(t.numpy() for t in uv) for m, uv in torch.load(GOLDEN / "heads.pt", weights_only=True).items()}
    return MAKE.inputs(mode, heads)


def _by_key(records: list[dict]) -> dict:
    out = {}
    for r in records:
        key = (r["name"], r["target"])
        assert key not in out, f"two records for {key}"
        out[key] = r
    return out


@pytest.mark.parametrize("mode", MAKE.MODES)
def test_every_statement_gives_the_golden_numbers(mode):
    golden = json.loads((GOLDEN / f"records_{mode}.json").read_text())
    args, kwargs = _inputs(mode)
    now = MAKE.snapshot(fused_model_bounds(*args, statements=list(STATEMENTS), **kwargs))
    _close(golden["confidence"], now["confidence"], "confidence")
    then, current = _by_key(golden["records"]), _by_key(now["records"])
    assert set(then) == set(current), (sorted(set(then) - set(current)), sorted(set(current) - set(then)))
    assert [(r["name"], r["target"]) for r in golden["records"]] == [(r["name"], r["target"]) for r in now["records"]]
    for key, record in then.items():
        _close(record, current[key], f"{key[0]}@{key[1]}")


@pytest.mark.parametrize("mode", MAKE.MODES)
@pytest.mark.parametrize("selection", list(MAKE.SELECTIONS))
def test_a_smaller_selection_keeps_its_delta_mc_accounting_and_values(mode, selection):
    golden = json.loads((GOLDEN / f"records_{mode}.json").read_text())["selections"][selection]
    args, kwargs = _inputs(mode)
    now = MAKE.selection_snapshot(fused_model_bounds(*args, statements=MAKE.SELECTIONS[selection], **kwargs))
    _close(golden, now, selection)


def test_the_snapshot_has_power():
    """The fixture makes every statement family apply (data, fusion and class radii, bounded, coupled, PAC-Bayes,
    hold-out, test set), so a change to any of them shows."""
    names = {r["name"] for r in json.loads((GOLDEN / "records_diagnostic.json").read_text())["records"]
             if r["bound"] is not None}
    assert names == set(STATEMENTS), sorted(set(STATEMENTS) - names)
