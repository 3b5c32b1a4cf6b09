"""Bounds stand only beside what they bound (THEORY §4 "What it bounds", §8): a walk over bounds.json and report.md.

The report of the fixture run (tests/fixtures/bounds_v1) in both modes: every statement record names the quantity it
bounds and carries the empirical value of exactly that quantity on a named split; every row of report.md's tables
that shows a bound shows beside it only that quantity. The walker is checked on a deliberately wrong report too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments import bounds as bounds_cli
from scilt_theory.schema import QUANTITIES, BoundsReport

FIXTURE = Path(__file__).parent / "fixtures" / "bounds_v1"


@pytest.fixture(scope="module", params=["diagnostic", "certified"])
def written(request, tmp_path_factory) -> tuple[BoundsReport, str]:
    out = tmp_path_factory.mktemp(request.param)
    assert bounds_cli.main(["--ckpt", str(FIXTURE / "run.pt"), "--mode", request.param, "--draws", "200",
                            "--no-plots", "--quiet", "--out", str(out)]) == 0
    report = BoundsReport.from_json(json.loads((out / "bounds.json").read_text()))
    return report, (out / "report.md").read_text()


def _tables(markdown: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(section title, header cells, rows) of every Markdown table."""
    out, section, lines = [], "", markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:]
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append((section, header, rows))
            continue
        i += 1
    return out


def like_with_like_violations(markdown: str) -> list[str]:
    """Rows of report.md whose bound stands beside another quantity than the one it bounds (empty: none)."""
    bad = []
    for section, header, rows in _tables(markdown):
        if "bounds" in header and "compared with" in header:
            b, c = header.index("bounds"), header.index("compared with")
            for row in rows:
                if row[c] == "—":
                    continue
                quantity = row[c].split(" on ", 1)[0]
                if quantity != row[b] or not re.search(r" on (test|hold-out) split", row[c]):
                    bad.append(f"{section}: {row[0]} {row[1]} bounds {row[b]!r} but is compared with {row[c]!r}")
        elif section.startswith("Per class"):
            # every column of the per-class table is about the class error: its empirical column says so and names
            # the split; the bound columns are class-level statements only
            errors = [h for h in header if "error" in h]
            if not errors or not all(h.startswith("class error on the ") and "split" in h for h in errors):
                bad.append(f"{section}: empirical column(s) {errors} do not name the class error and the split")
            allowed = {"hold-out certificate", "test-set certificate", "Cor. 5.4 bound", "Cor. 5.4 floor"}
            bounds = [h for h in header if "bound" in h or "certificate" in h or "floor" in h]
            if set(bounds) - allowed:
                bad.append(f"{section}: columns {sorted(set(bounds) - allowed)} are not class-error statements")
        elif section.startswith(("Hold-out", "Test-set")):
            q = header.index("bounds")
            for row in rows:
                if row[q] not in QUANTITIES:
                    bad.append(f"{section}: row {row[0]} bounds an unnamed quantity {row[q]!r}")
    return bad


def test_every_record_is_compared_with_exactly_the_quantity_it_bounds(written):
    report, _ = written
    assert report.statements
    for r in report.statements:
        assert r.bounds_quantity in QUANTITIES, (r.name, r.target)
        assert r.compared_with is not None and r.compared_with.quantity == r.bounds_quantity, (r.name, r.target)
        assert r.compared_with.split == "test"
        expected_classifier = "trained" if r.family == "hold-out" else "bounded"
        assert r.compared_with.classifier == expected_classifier, (r.name, r.target)
    # Theorem 5.3 stands beside the prior-weighted error, not the balanced one
    t53 = report.statement("theorem53")
    assert t53.compared_with.value == pytest.approx(report.overall.prior_weighted_test_error)
    counts = [row.n_train for row in report.per_class]
    errors = [row.test_error for row in report.per_class]
    assert t53.compared_with.value == pytest.approx(sum(n * e for n, e in zip(counts, errors)) / sum(counts))


def test_every_row_of_report_md_names_its_quantity_and_split(written):
    _, markdown = written
    tables = _tables(markdown)
    assert any("compared with" in header for _, header, _ in tables)
    assert any(section.startswith("Per class") for section, _, _ in tables)
    assert like_with_like_violations(markdown) == []


def test_the_walker_catches_a_bound_beside_another_quantity(written):
    _, markdown = written
    wrong = markdown.replace("prior-weighted error on test split", "balanced error on test split", 1)
    assert wrong != markdown and like_with_like_violations(wrong)
    wrong = markdown.replace("class error on the test split", "test error", 1)
    assert like_with_like_violations(wrong)


def test_hold_out_block_lists_every_target_with_errors_n_delta_and_bound(written):
    report, _ = written
    block = report.holdout
    assert block is not None and block.same_distribution
    targets = {row.target for row in block.rows}
    assert {"overall", "balanced", "worst_class"} <= targets
    assert {f"class:{c}" for c in range(report.num_classes)} <= targets
    assert {f"group:{g}" for g in report.groups} <= targets
    for row in block.rows:
        if row.bound is None:
            continue
        assert row.errors is not None and row.n and row.delta and row.empirical_error <= row.bound <= 1.0
    # the δ split is written down: δ/2 for the pooled count, δ/(2K₊) for each class
    k_plus = sum(1 for row in block.rows if row.target.startswith("class:") and row.n)
    cls = next(row for row in block.rows if row.target == "class:0")
    assert cls.delta == pytest.approx(report.delta / 2 / k_plus)
    assert {e.event for e in report.delta_budget} >= {"theorem53", "corollary54", "holdout_certificate"}
