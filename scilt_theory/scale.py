"""Bounds at scale (issue 25, items 1–3 and 5): every statement of the frozen recipe against n, measured.

The sizes. The training split of ``scitiles-pop`` at imbalance 100 with head class n_max has the counts
``longtail_counts(n_max, 9, 100)``; the "train" stream is nested (a smaller profile is a prefix of a larger one,
population.py), so the features of the largest profile, extracted once (scilt_theory/feature_pool.py), hold every
smaller one. At each size the frozen recipe (α and the two cosine heads on the cached features,
scilt_theory/frozen_heads.py, seed 0) is trained on the whole sample — no hold-out: with frozen features the uniform
statements and PAC-Bayes are certificates on the whole training sample (validity ``fixed-features``) — and every
statement is evaluated on it, beside the population error of the same classifier on a large i.i.d. test draw of
P_c (the "test" stream) with its two-sided 95 % interval (THEORY §0: Clopper–Pearson per class, kl for pooled rates,
simultaneous intervals for the worst class and the prior-weighted error).

Measured against predicted. Each record carries ``n_for_nonvacuous``: the size at which its value would drop below 1
if the margin losses stayed as they are and the other terms shrank like 1/√n (statements/margin.py). The study
reads it at the smallest size (the prediction) and compares it with the first measured size at which the value is
below 1 (log-log interpolation between the two measured sizes around the crossing).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.checkpoint import atomic_write_text
from scilt_theory.frozen_heads import BoundSettings, HeadRecipe, bound_heads, class_errors, scores_of, train_heads
from scilt_theory.validity import claim_design_folder, target_value, targets_of

__all__ = ["BENCHMARKS", "ScaleDesign", "benchmark_table", "crossings", "mc_complexity_timing", "population_interval",
           "run_size", "scale_rows"]

#: the terms a row keeps of a record (margin bounds: the best grid point's terms; tightest: which statement)
TERM_KEYS = ("train_margin_loss", "complexity", "confidence", "rho", "attained_by", "radius_penult", "radius_final")


@dataclass(frozen=True)
class ScaleDesign:
    heads: tuple[int, ...] = (500, 1000, 2000, 5000, 10000, 20000)   #: head-class sizes n_max
    imbalance: float = 100.0
    num_classes: int = 9
    test_per_class: int = 3000
    seed: int = 0
    recipe: HeadRecipe = HeadRecipe()
    bounds: BoundSettings = BoundSettings()
    #: Many / Medium / Few fixed for the whole study: the groups of the profile at the smallest head (the toolkit's
    #: thresholds), so that a group names the same classes at every size (None: each size's own counts decide)
    fixed_groups: bool = True

    def counts(self, head: int) -> list[int]:
        from scilt_theory.data.longtail import longtail_counts

        return [int(c) for c in longtail_counts(head, self.num_classes, self.imbalance)]

    def groups(self) -> list[str] | None:
        from scilt_theory.metrics import class_groups as class_groups_from_counts

        if not self.fixed_groups:
            return None
        return list(class_groups_from_counts(self.counts(min(self.heads)), self.bounds.many_threshold,
                                             self.bounds.few_threshold))

    def to_dict(self) -> dict:
        return asdict(self)


def population_interval(target: str, errors: np.ndarray, counts: np.ndarray, pi: np.ndarray,
                        groups: Sequence[str]) -> tuple[float, float]:
    """Two-sided 95 % interval of a target's population value from the test counts (THEORY §0)."""
    from scilt_theory.binomial import (
        clopper_pearson_interval,
        kl_interval,
        max_rate_interval,
        mean_rate_interval,
    )

    e, m = [int(v) for v in errors], [int(v) for v in counts]
    if target.startswith("class:"):
        c = int(target.split(":", 1)[1])
        return clopper_pearson_interval(e[c], m[c])
    if target == "overall":
        return mean_rate_interval(e, m, [float(p) for p in pi])
    if target == "balanced":
        return kl_interval(sum(e), sum(m)) if len(set(m)) == 1 else mean_rate_interval(e, m, [1 / len(m)] * len(m))
    if target.startswith("group:"):
        sel = [c for c, g in enumerate(groups) if g == target.split(":", 1)[1]]
        es, ms = [e[c] for c in sel], [m[c] for c in sel]
        return kl_interval(sum(es), sum(ms)) if len(set(ms)) == 1 else mean_rate_interval(es, ms,
                                                                                           [1 / len(ms)] * len(ms))
    if target == "worst_class":
        return max_rate_interval(e, m)
    raise ValueError(f"unknown target {target!r}")


def run_size(train: Any, test: Any, head: int, design: ScaleDesign, log: Callable[[str], None] = print) -> dict:
    """One size: train on the first ``counts(head)`` draws of every class of ``train`` (a PoolFeatures of the train
    stream), bound every statement on that sample, and measure the classifier on ``test`` (a PoolFeatures)."""
    from scilt_theory.statements.certificates import CertificateSample

    k = design.num_classes
    counts = design.counts(head)
    slices = train.class_slices(k)
    rows = np.concatenate([np.arange(s.start, s.start + n) for s, n in zip(slices, counts)])
    if any(n > s.stop - s.start for s, n in zip(slices, counts)):
        raise ValueError(f"the train features hold fewer draws than head {head} needs")
    labels = train.labels.numpy()[rows]
    started = time.perf_counter()
    model = train_heads(train.phi1[rows], train.phi2[rows], torch.as_tensor(labels), k, design.recipe,
                        seed=design.seed)
    trained = time.perf_counter()
    heads = model.heads_float64()
    psi1_all, psi2_all = train.psi()
    psi1, psi2 = psi1_all[rows], psi2_all[rows]
    t1, t2 = test.psi()
    test_labels = test.labels.numpy()
    test_err, test_cnt = class_errors(scores_of(t1, t2, heads), test_labels, k)
    train_err, _ = class_errors(scores_of(psi1, psi2, heads), labels, k)
    samples = {"test": CertificateSample("test", tuple(int(v) for v in test_err), tuple(int(v) for v in test_cnt),
                                         True, "the trained heads")}
    fb = bound_heads(psi1, psi2, labels, heads, num_classes=k, scale=design.recipe.scale, class_counts=counts,
                     seed=design.seed, certificate_samples=samples, settings=design.bounds,
                     class_groups=design.groups())
    bounded = time.perf_counter()
    ctx = fb.context
    groups = list(ctx.class_groups)
    pi = ctx.class_counts / ctx.n
    rates = test_err / test_cnt
    population = {}
    for t in targets_of(k, groups):
        lo, hi = population_interval(t, test_err, test_cnt, pi, groups)
        population[t] = {"value": target_value(t, rates, pi, groups), "low": lo, "high": hi,
                         "train": target_value(t, train_err / np.asarray(counts), pi, groups)}
    records = []
    for rec in fb.records:
        terms = {key: rec.terms[key] for key in TERM_KEYS if key in rec.terms}
        records.append({"statement": rec.name, "family": rec.family, "target": rec.target, "bound": rec.bound,
                        "floor": rec.floor, "n_for_nonvacuous": rec.n_for_nonvacuous, "quantity": rec.bounds_quantity,
                        "terms": terms})
    out = {"head": head, "n": int(ctx.n), "counts": counts, "groups": groups, "alpha": float(model.alpha.detach()),
           "population": population, "records": records, "test_errors": test_err.tolist(),
           "test_counts": test_cnt.tolist(), "train_errors": train_err.tolist(),
           "seconds": {"train": trained - started, "bounds": bounded - trained}}
    log(f"[scale] head {head} (n = {ctx.n}): train {trained - started:.0f} s, bounds {bounded - trained:.0f} s, "
        f"alpha {out['alpha']:.3f}, balanced population error {population['balanced']['value']:.4f}")
    return out


def run_sizes(train: Any, test: Any, design: ScaleDesign, folder: str | Path,
              log: Callable[[str], None] = print) -> list[dict]:
    """Every size of the design, each written to ``folder/head<n_max>.json`` when done (read back on a rerun)."""
    folder = claim_design_folder(folder, design, "sizes")
    out = []
    for head in design.heads:
        path = folder / f"head{head}.json"
        if path.is_file():
            out.append(json.loads(path.read_text()))
            continue
        res = run_size(train, test, head, design, log)
        atomic_write_text(json.dumps(res), path)
        out.append(res)
    return out


def scale_rows(sizes: Sequence[dict]) -> list[dict]:
    """docs/scale/scale.json ``rows``: one per (n, statement, target) with the population error beside it."""
    rows = []
    for res in sizes:
        for rec in res["records"]:
            if rec["bound"] is None:
                continue
            pop = res["population"].get(rec["target"])
            n_c = res["counts"][int(rec["target"].split(":")[1])] if rec["target"].startswith("class:") else None
            rows.append({"n": res["n"], "head": res["head"], "n_c": n_c, "statement": rec["statement"],
                         "family": rec["family"],
                         "target": rec["target"], "bound": rec["bound"], "floor": rec["floor"],
                         "population_error": None if pop is None else pop["value"],
                         "population_interval": None if pop is None else [pop["low"], pop["high"]],
                         "n_for_nonvacuous": rec["n_for_nonvacuous"], "terms": rec["terms"]})
    return rows


def _crossing(ns: np.ndarray, values: np.ndarray) -> float | None:
    """The n at which a measured curve first drops below 1 (log-log interpolation; the first size when it starts
    below 1; None when it never does)."""
    below = np.nonzero(values < 1.0)[0]
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(ns[0])
    x0, x1, y0, y1 = math.log(ns[i - 1]), math.log(ns[i]), math.log(values[i - 1]), math.log(values[i])
    return float(math.exp(x0 + (x1 - x0) * (0.0 - y0) / (y1 - y0))) if y1 != y0 else float(ns[i])


def crossings(rows: Sequence[dict], statement: str = "tightest_uniform") -> dict[str, dict]:
    """Per target of ``statement``: the measured n at which it turns non-vacuous, against the n predicted at the
    smallest size (``n_for_nonvacuous``), the prediction at the largest size, and the values at both ends."""
    out: dict[str, dict] = {}
    targets = list(dict.fromkeys(r["target"] for r in rows if r["statement"] == statement))
    for t in targets:
        sel = sorted((r for r in rows if r["statement"] == statement and r["target"] == t), key=lambda r: r["n"])
        ns = np.array([r["n"] for r in sel], dtype=float)
        values = np.array([r["bound"] for r in sel], dtype=float)
        out[t] = {"measured_n": _crossing(ns, values), "predicted_n_at_smallest": sel[0]["n_for_nonvacuous"],
                  "predicted_n_at_largest": sel[-1]["n_for_nonvacuous"], "smallest_n": int(ns[0]),
                  "largest_n": int(ns[-1]), "bound_at_smallest": float(values[0]),
                  "bound_at_largest": float(values[-1]),
                  "floor_at_largest": sel[-1]["floor"], "attained_by_at_largest": sel[-1]["terms"].get("attained_by"),
                  "population_error_at_largest": sel[-1]["population_error"]}
    return out


# ---------------------------------------------------------------------------------------------- benchmarks (item 3)
#: class counts of the paper's benchmarks' training sets, with where they come from
BENCHMARKS: dict[str, dict[str, Any]] = {
    "ISIC 2019": {
        "counts": {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239, "VASC": 253,
                   "SCC": 628},
        "source": "ISIC_2019_Training_GroundTruth.csv (ISIC 2019 challenge training set, 25,331 images; the UNK "
                  "column is empty in training)"},
    "NIH ChestX-ray14 (single-label rule of NIH-CXR-LT)": {
        "counts": None,   # filled from scilt_theory/data/profiles/nih_chestxray14.json (single_label)
        "source": "scilt_theory/data/profiles/nih_chestxray14.json, 'single_label' (rows of Data_Entry_2017_v2020 "
                  "with exactly one label, the nih-cxr-lt rule; 15 classes incl. 'No Finding', 91,324 images)"},
    "BloodMNIST": {
        "counts": {"basophil": 852, "eosinophil": 2181, "erythroblast": 1085, "immature granulocyte": 2026,
                   "lymphocyte": 849, "monocyte": 993, "neutrophil": 2330, "platelet": 1643},
        "source": "MedMNIST v2 bloodmnist.npz train split (11,959 images; per-class counts of train_labels as "
                  "commonly reported, they sum to 11,959 — not re-read from the file here)"},
}


def benchmark_counts() -> dict[str, dict[str, int]]:
    from scilt_theory.data.nih import nih_profile

    out = {}
    for name, spec in BENCHMARKS.items():
        counts = spec["counts"] if spec["counts"] is not None else dict(nih_profile()["single_label"])
        out[name] = {k: int(v) for k, v in counts.items()}
    return out


# ----------------------------------------------------------------------------------------------- MC complexity (item 5)
def mc_complexity_timing(n: int = 115_846, d: int = 768, k: int = 1000, draws: Sequence[int] = (100, 1000),
                         gemm_rows: int = 1000, repeats: int = 2, seed: int = 0,
                         log: Callable[[str], None] = print) -> dict:
    """Wall time of the Monte Carlo complexity of the row class (``rademacher_linear``, what the bounds use) on
    n × d float32 unit features with K outputs, for each number of draws m, against one bare GEMM of the same shape
    ((m × n) signs @ (n × d) features, the signs precomputed; for m > ``gemm_rows`` the GEMM is timed on a
    ``gemm_rows``-row block and multiplied by m / gemm_rows — the same FLOPs, without holding m × n signs).
    MC and GEMM are timed alternately, best of ``repeats``, so that a busy machine slows both alike."""
    from scilt_theory.rademacher import rademacher_linear

    gen = torch.Generator().manual_seed(seed)
    psi = torch.randn(n, d, generator=gen)
    psi /= psi.norm(dim=1, keepdim=True)
    out = {"n": n, "d": d, "k": k, "dtype": "float32", "threads": torch.get_num_threads(),
           "torch": torch.__version__, "rows": []}
    for m in draws:
        block = min(m, gemm_rows)
        signs = torch.empty(block, n).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)
        best = {"gemm": float("inf"), "mc": float("inf")}
        value = None
        for _ in range(repeats):
            started = time.perf_counter()
            _ = signs @ psi
            best["gemm"] = min(best["gemm"], (time.perf_counter() - started) * m / block)
            started = time.perf_counter()
            value = rademacher_linear(psi, 1.0, num_outputs=k, norm="row", method="mc", n_draws=m, seed=seed)
            best["mc"] = min(best["mc"], time.perf_counter() - started)
        del signs
        row = {"draws": m, "mc_seconds": best["mc"], "gemm_seconds": best["gemm"], "ratio": best["mc"] / best["gemm"],
               "mc_seconds_per_draw": best["mc"] / m, "value": value.value, "stderr": value.stderr,
               "upper": value.upper, "gemm_flops": 2.0 * m * n * d}
        out["rows"].append(row)
        log(f"[erc] {m} draws: MC {best['mc']:.2f} s ({1000 * best['mc'] / m:.1f} ms per draw), "
            f"GEMM {best['gemm']:.2f} s, ratio {row['ratio']:.2f}")
    last = out["rows"][-1]
    out["extrapolated_10000_draws_seconds"] = None if last["draws"] >= 10_000 else last["mc_seconds_per_draw"] * 10_000
    return out


# ---------------------------------------------------------------------------------------------- benchmarks (item 3)
def _loglog(points: Sequence[tuple[float, float]]) -> Callable[[float], float]:
    """The measured curve through ``points`` (x, value), interpolated in log-log, extended beyond its ends along
    its first / last segment."""
    pts = sorted(points)
    lx = np.log([p[0] for p in pts])
    ly = np.log([max(p[1], 1e-12) for p in pts])

    def at(x: float) -> float:
        if len(lx) == 1:
            return float(np.exp(ly[0]))
        t = math.log(x)
        if t <= lx[0] or t >= lx[-1]:
            i, j = (0, 1) if t <= lx[0] else (-2, -1)
            return float(np.exp(ly[i] + (ly[j] - ly[i]) / (lx[j] - lx[i]) * (t - lx[i])))
        return float(np.exp(np.interp(t, lx, ly)))

    return at


def benchmark_table(rows: Sequence[dict], statement: str = "tightest_uniform", base_classes: int = 9,
                    many: int = 100, few: int = 20) -> dict:
    """Which targets ``statement`` could certify at the benchmarks' training sizes, from the measured scaling.

    The model (stated in the output): the complexity terms of the row-norm classes grow like K/√n (R̂ᵛ = (B K/n)
    E‖Ψᵀσ‖), so a benchmark of K classes and n images is read at the equivalent size n·(9/K)² of this study (the
    confidence terms' ln K and the benchmark's own class prior are neglected). The overall value is the measured
    overall curve of ``statement`` at that size; a class with n_c images gets the smallest value any class of this
    study measured at n_c·(9/K)² (each class's curve against its own count: optimistic, a class as separable as the
    most separable one here). Curves are interpolated log-log and extended along their end segments. A group's
    balanced error is bounded by the mean of its classes' values, the worst class by their max (Many > ``many``
    training images, Few < ``few``, the toolkit's thresholds). Margins as on scitiles-pop: a benchmark whose features
    separate its classes less well gets larger values."""
    mine = [r for r in rows if r["statement"] == statement]
    if not mine:
        return {}
    overall = _loglog([(r["n"], r["bound"]) for r in mine if r["target"] == "overall"])
    per_class: dict[str, list[tuple[float, float]]] = {}
    for r in mine:
        if r["target"].startswith("class:"):
            per_class.setdefault(r["target"], []).append((float(r["n_c"]), float(r["bound"])))
    curves = {t: (_loglog(p), min(x for x, _ in p), max(x for x, _ in p)) for t, p in per_class.items()}
    top = max(curves, key=lambda t: curves[t][2])      # the class measured at the largest count
    bottom = min(curves, key=lambda t: curves[t][1])   # ... at the smallest

    def class_value(n_c: float) -> float:
        inside = [f(n_c) for f, lo, hi in curves.values() if lo <= n_c <= hi]
        if inside:
            return min(inside)
        return curves[top][0](n_c) if n_c > curves[top][2] else curves[bottom][0](n_c)

    table = []
    for name, counts in benchmark_counts().items():
        k = len(counts)
        factor = (base_classes / k) ** 2
        n_total = sum(counts.values())
        predicted_class = {c: class_value(n * factor) for c, n in counts.items()}
        groups = {"many": [c for c, n in counts.items() if n > many],
                  "medium": [c for c, n in counts.items() if few <= n <= many],
                  "few": [c for c, n in counts.items() if n < few]}
        values = {"overall": overall(n_total * factor),
                  "balanced": float(np.mean(list(predicted_class.values()))),
                  **{f"group:{g}": float(np.mean([predicted_class[c] for c in m])) for g, m in groups.items() if m},
                  "worst_class": max(predicted_class.values())}
        certified = {**{t: bool(v < 1.0) for t, v in values.items()},
                     **{f"class:{c}": bool(v < 1.0) for c, v in predicted_class.items()}}
        table.append({"benchmark": name, "n": n_total, "classes": k, "equivalent_n": n_total * factor,
                      "counts": counts, "source": BENCHMARKS[name]["source"], "groups": groups, "predicted": values,
                      "predicted_class": predicted_class, "certified": certified})
    model = " ".join(benchmark_table.__doc__.split("\n\n")[1].split())
    return {"statement": statement, "model": model, "table": table}
