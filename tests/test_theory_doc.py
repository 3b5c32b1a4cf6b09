"""docs/THEORY.md is the mathematics the code cites: every "THEORY §N" in the repository exists there, every
statement component cites a section of it, and nothing in the repository points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "THEORY.md"
CITATION = re.compile(r"THEORY(?:\.md)? ?§ ?(\d+)([a-c]?)(?:-(\d+))?")


def _sections() -> dict[str, str]:
    """Section number -> its text, from the '## N.' headings of docs/THEORY.md."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## (\d+)\. ", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".md", ".toml", ".cfg", ".txt", ".json", ""}
    files = [ROOT / line for line in out.splitlines() if Path(line).suffix in suffixes]
    return [f for f in files if f.is_file() and "fixtures" not in f.parts]


def _citations() -> list[tuple[str, str, str]]:
    found = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in CITATION.finditer(text):
            found.append((str(path.relative_to(ROOT)), m.group(1) + m.group(2), m.group(3) or ""))
    return found


def test_the_document_has_sections_0_to_8():
    assert sorted(_sections(), key=int) == [str(i) for i in range(9)]


def test_every_theory_citation_in_the_repository_exists_in_docs_theory():
    sections = _sections()
    citations = _citations()
    assert len(citations) > 100  # the scan sees the code's citations
    missing = []
    for where, cited, upto in citations:
        number, letter = cited.rstrip("abc"), cited[len(cited.rstrip("abc")):]
        if number not in sections or (upto and upto not in sections):
            missing.append((where, cited))
        elif letter and f"({letter})" not in sections[number]:
            missing.append((where, cited))
    assert not missing, missing[:10]


def test_every_statement_component_cites_a_section_of_the_document():
    from scilt_theory.statements import STATEMENTS

    sections = _sections()
    for statement in STATEMENTS.values():
        m = CITATION.search(statement.theory)
        assert m and m.group(1) in sections, statement.theory


def test_every_named_theorem_is_stated_in_the_document():
    text = DOC.read_text(encoding="utf-8")
    for name in ("Lemma 5.1", "Lemma 5.2", "(a) Envelope", "(b) Vector contraction", "(c) Uniform deviation",
                 "Theorem 5.3", "Corollary 5.4"):
        assert name in text, name


@pytest.mark.parametrize("pattern", [r"\.\./shared", r"shared/THEORY", r"shared/DESIGN", r"shared/PEERS"])
def test_nothing_in_the_repository_points_outside_it(pattern):
    offenders = [str(p.relative_to(ROOT)) for p in _tracked_text_files() if p.name != Path(__file__).name
                 and re.search(pattern, p.read_text(encoding="utf-8", errors="replace"))]
    assert not offenders, offenders
