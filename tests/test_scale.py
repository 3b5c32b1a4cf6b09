"""The scale study's pieces (scilt_theory/scale.py, issue 25) on synthetic features: fast, offline, no backbone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scilt_theory import scale
from scilt_theory.binomial import clopper_pearson_interval, kl_interval, max_rate_interval
from scilt_theory.feature_pool import PoolFeatures
from scilt_theory.frozen_heads import BoundSettings, HeadRecipe

K = 3


def features(per_class: list[int], seed: int) -> PoolFeatures:
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(0).normal(size=(K, 6)) * 1.5
    labels = np.repeat(np.arange(K), per_class)
    x = means[labels] + rng.normal(size=(len(labels), 6))
    return PoolFeatures(torch.tensor(x, dtype=torch.float32), torch.tensor(np.tanh(x), dtype=torch.float32),
                        torch.as_tensor(labels))


DESIGN = scale.ScaleDesign(heads=(40, 120), imbalance=4.0, num_classes=K, test_per_class=80,
                           recipe=HeadRecipe(epochs=4),
                           bounds=BoundSettings(statements=("theorem53", "corollary54", "testset_certificate",
                                                            "theorem53_bounded_features"), method="closed"))


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and stays fast on a busy machine
    train = features(DESIGN.counts(120), 1)
    test = features([80] * K, 2)
    folder = tmp_path_factory.mktemp("scale")
    out = scale.run_sizes(train, test, DESIGN, folder, log=lambda _: None)
    again = scale.run_sizes(train, test, DESIGN, folder, log=lambda _: None)  # read back, not recomputed
    assert again == out
    torch.set_num_threads(threads)
    return out


def test_sizes_are_nested_prefixes_and_rows_carry_population_errors(sizes):
    assert [s["n"] for s in sizes] == [sum(DESIGN.counts(h)) for h in DESIGN.heads]
    rows = scale.scale_rows(sizes)
    assert {r["statement"] for r in rows} >= {"theorem53", "corollary54", "testset_certificate"}
    for r in rows:
        assert r["population_error"] is not None and r["bound"] is not None
        lo, hi = r["population_interval"]
        assert lo <= r["population_error"] <= hi
        if r["target"].startswith("class:"):
            assert r["n_c"] == DESIGN.counts(r["head"])[int(r["target"][6:])]
    cert = [r for r in rows if r["statement"] == "testset_certificate"]
    assert all(r["bound"] >= r["population_error"] - 1e-12 for r in cert if r["target"].startswith("class:"))


def test_population_intervals_are_the_theory_section_0_ones():
    e, m, pi = np.array([3, 10, 0]), np.array([100, 100, 100]), np.array([0.6, 0.3, 0.1])
    groups = ["many", "many", "few"]
    assert scale.population_interval("class:1", e, m, pi, groups) == clopper_pearson_interval(10, 100)
    assert scale.population_interval("balanced", e, m, pi, groups) == kl_interval(13, 300)
    assert scale.population_interval("group:many", e, m, pi, groups) == kl_interval(13, 200)
    assert scale.population_interval("worst_class", e, m, pi, groups) == max_rate_interval([3, 10, 0], [100] * 3)
    lo, hi = scale.population_interval("overall", e, m, pi, groups)
    assert lo <= 0.6 * 0.03 + 0.3 * 0.1 <= hi


def test_crossing_interpolates_log_log():
    rows = [{"n": n, "statement": "s", "target": "overall", "bound": b, "floor": 0.1, "n_for_nonvacuous": 5000.0,
             "terms": {}, "population_error": 0.01} for n, b in ((1000, 4.0), (4000, 2.0), (16000, 0.5))]
    c = scale.crossings(rows, "s")["overall"]
    assert c["measured_n"] == pytest.approx(8000.0)       # 2 → 0.5 over a factor 4: 1 at the geometric middle
    assert c["predicted_n_at_smallest"] == 5000.0
    rows[0]["bound"] = 0.9
    assert scale.crossings(rows, "s")["overall"]["measured_n"] == 1000.0
    for r in rows:
        r["bound"] = 1.5
    assert scale.crossings(rows, "s")["overall"]["measured_n"] is None


def test_benchmark_table_reads_the_measured_curves_at_the_equivalent_size():
    rows = []
    for n in (1000, 4000, 16000):
        counts = [n // 2, n // 4, n // 4]
        rows.append({"n": n, "n_c": None, "statement": "tightest_uniform", "target": "overall",
                     "bound": 40 / math.sqrt(n), "terms": {}})
        for c, n_c in enumerate(counts):
            rows.append({"n": n, "n_c": n_c, "statement": "tightest_uniform", "target": f"class:{c}",
                         "bound": (30 + 10 * c) / math.sqrt(n_c), "terms": {}})
    out = scale.benchmark_table(rows)
    isic = next(t for t in out["table"] if t["benchmark"] == "ISIC 2019")
    assert isic["n"] == 25331 and isic["classes"] == 8
    factor = (9 / 8) ** 2
    assert isic["equivalent_n"] == pytest.approx(25331 * factor)
    assert isic["predicted"]["overall"] == pytest.approx(40 / math.sqrt(25331 * factor))   # extended, log-log
    # NV (12,875 · 81/64 = 16,295) lies beyond every class's counts: class 0's curve (measured up to 8,000), extended
    assert isic["predicted_class"]["NV"] == pytest.approx(30 / math.sqrt(12875 * factor))
    # BKL (2,624 · 81/64 = 3,321) lies inside the counts of all three classes: the smallest of them (class 0's)
    assert isic["predicted_class"]["BKL"] == pytest.approx(30 / math.sqrt(2624 * factor))
    assert isic["certified"]["class:NV"] and not isic["certified"]["class:DF"]   # 30/√(239·81/64) = 1.73
    assert isic["predicted"]["worst_class"] == max(isic["predicted_class"].values())


def test_mc_complexity_timing_runs_small():
    out = scale.mc_complexity_timing(n=300, d=8, k=5, draws=(10, 40), gemm_rows=20, repeats=1, log=lambda _: None)
    assert [r["draws"] for r in out["rows"]] == [10, 40]
    assert all(r["mc_seconds"] > 0 and r["gemm_seconds"] > 0 for r in out["rows"])
    assert out["extrapolated_10000_draws_seconds"] == pytest.approx(out["rows"][-1]["mc_seconds_per_draw"] * 1e4)
