"""The one JSON sanitiser (codec.to_jsonable) and the one atomic writer (checkpoint.atomic_files)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from scilt_theory.checkpoint import atomic_files, current_umask
from scilt_theory.codec import described, to_jsonable


@dataclass(frozen=True)
class _Row:
    index: int = described("an index", json_key="class")
    value: float = described("a value")


def test_to_jsonable_gives_plain_json():
    value = {1: np.float64(0.5), "b": [np.int64(3), np.bool_(True), float("nan"), float("inf")],
             "arr": np.arange(3), "t": torch.tensor([1.5, 2.5]), "row": _Row(2, np.float32(0.25)), "tup": ("x", None)}
    out = to_jsonable(value)
    assert out == {"1": 0.5, "b": [3, True, None, None], "arr": [0, 1, 2], "t": [1.5, 2.5],
                   "row": {"class": 2, "value": 0.25}, "tup": ["x", None]}
    assert type(out["b"][0]) is int and type(out["b"][1]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON


def test_to_jsonable_refuses_what_has_no_place_in_json():
    with pytest.raises(TypeError, match="cannot write a object"):
        to_jsonable({"x": object()})


def test_atomic_files_replace_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "fig.png", tmp_path / "fig.pdf"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError):
        with atomic_files(a, b) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("drawing the second file failed")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]  # no temporary file left
    with atomic_files(a, tmp_path / "new" / "fig.pdf") as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert a.read_text() == "new a" and (tmp_path / "new" / "fig.pdf").read_text() == "new b"
    assert os.stat(a).st_mode & 0o777 == 0o666 & ~current_umask()
