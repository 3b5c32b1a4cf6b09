"""Every benchmark script runs in tiny settings and appends its section to a given results file.

Timings are never asserted (benchmarks/RESULTS.md holds the measured ratios); these only keep the scripts working.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_extract, bench_forward, bench_rademacher, bench_step


@pytest.mark.parametrize("module, title", [
    (bench_forward, "Dual-feature forward vs plain timm forward"),
    (bench_step, "SciLT training step vs final-only (LIFT-style) step"),
    (bench_extract, "Feature extraction: throughput and peak memory"),
    (bench_rademacher, "Rademacher estimators"),
])
def test_benchmark_smoke_run_appends_its_section(module, title, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    module.main(["--smoke", "--device", "cpu", "--append-results", "--results-path", str(results)]
                if module is not bench_rademacher else
                ["--smoke", "--append-results", "--results-path", str(results)])
    text = results.read_text()
    assert text.startswith("# Benchmark results") and f"## {title}" in text
    assert "machine:" in text and "torch" in text and "date" in text
    assert "--results-path" not in text  # where the text went is not part of the command shown
    assert "| --- |" in capsys.readouterr().out
    module.main(["--smoke", "--device", "cpu"] if module is not bench_rademacher else ["--smoke"])
    assert results.read_text() == text  # without --append-results nothing is written


def test_forward_and_step_report_finite_ratios_and_matching_features():
    fwd = bench_forward.main(["--smoke", "--device", "cpu"])
    assert fwd["final_feature_matches_timm"] and math.isfinite(fwd["ratio"]) and fwd["ratio"] > 0
    step = bench_step.main(["--smoke", "--device", "cpu"])
    assert math.isfinite(step["ratio"]) and step["flops"]["scilt"] >= step["flops"]["final_only"] > 0
