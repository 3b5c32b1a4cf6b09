"""No code path loads a file in a way that can run code from it: torch.load always with weights_only=True,
no pickle.load / numpy allow_pickle anywhere in the code a user runs (the library, the commands, the benchmarks).

Tests are not scanned: they pickle in-memory objects on purpose (lazy image collections must survive the trip to
DataLoader workers), which loads no file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("scilt_theory", "experiments", "benchmarks")
UNSAFE = [re.compile(p) for p in (r"weights_only\s*=\s*False", r"\bpickle\.loads?\(", r"allow_pickle\s*=\s*True",
                                   r"\bdill\.load", r"\bjoblib\.load\(")]


def _sources() -> list[Path]:
    return [p for top in SCANNED for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts]


def _torch_load_calls(text: str) -> list[str]:
    """The argument text of every torch.load( … ) call (balanced parentheses)."""
    calls = []
    for match in re.finditer(r"torch\.load\(", text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        calls.append(text[match.end():i - 1])
    return calls


def test_no_unsafe_loader_anywhere():
    sources = _sources()
    assert any(p.name == "checkpoint.py" for p in sources)  # the scan sees the library
    offenders = []
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(ROOT)}: {pattern.pattern}" for pattern in UNSAFE if pattern.search(text)]
        offenders += [f"{path.relative_to(ROOT)}: torch.load({args.strip()[:60]})" for args in _torch_load_calls(text)
                      if not re.search(r"weights_only\s*=\s*True", args)]
    assert not offenders, offenders


def test_the_scan_catches_an_unsafe_call():
    bad = "record = torch.load(path,\n    map_location='cpu')\n"
    assert _torch_load_calls(bad) and not re.search(r"weights_only\s*=\s*True", _torch_load_calls(bad)[0])
    assert UNSAFE[0].search("torch.load(p, weights_only=" + "False)")
