"""``python -m experiments.scale``: every statement of the frozen recipe against n, measured (issue 25, items 1–3, 5).

Features (extracted once, cached under runs/feature_pool; scilt_theory/feature_pool.py): the "train" stream of
scitiles-pop at seed 0 up to the largest profile (head 20,000 at imbalance 100: n = 45,437; the stream is nested, so
every smaller profile is a prefix of it) and a test draw of 3,000 per class (the "test" stream, seed 0 — the pool of
``experiments.validity`` too). At each size the frozen recipe is trained on the whole sample and every statement
evaluated on it beside the population error of the same classifier on the test draw with its 95 % interval
(scilt_theory/scale.py). Each size is written to ``--work`` when done, so an interrupted run resumes.

Writes ``--out``/scale.json (``rows``: n, statement, family, target, bound, floor, population_error, …; the measured
against predicted n per target; the benchmark table), scale.md and scale.png.
``--erc`` instead times the Monte Carlo complexity at ImageNet-LT scale (115,846 × 768, K = 1000) against one bare
GEMM of the same shape and writes ``--out``/erc_timing.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scilt_theory.scale import ScaleDesign, benchmark_table, crossings, run_sizes, scale_rows

#: statements drawn in the figure and compared in the tables
SHOWN = ("tightest_uniform", "theorem53", "corollary54", "weighted_margin", "pac_bayes", "testset_certificate")
PANELS = ("overall", "balanced", "group:many", "group:medium", "group:few", "worst_class")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--heads", type=int, nargs="+", default=list(ScaleDesign.heads))
    p.add_argument("--test-per-class", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0, help="seed of the data streams and of the training")
    p.add_argument("--work", default="runs/scale")
    p.add_argument("--out", default="docs/scale")
    p.add_argument("--feature-root", default="runs/feature_pool")
    p.add_argument("--erc", action="store_true", help="time the MC complexity at ImageNet-LT scale instead")
    p.add_argument("--erc-draws", type=int, nargs="+", default=[100, 1000])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.erc:
        from scilt_theory.scale import mc_complexity_timing

        timing = mc_complexity_timing(draws=args.erc_draws)
        timing["wall_seconds"] = time.perf_counter() - started
        (out / "erc_timing.json").write_text(json.dumps(timing, indent=1) + "\n")
        print(f"wrote {out / 'erc_timing.json'}")
        return 0
    import torch

    from scilt_theory.feature_pool import pool_features

    torch.set_num_threads(1)  # small matrices: one thread is faster on the shared cores (frozen_heads, statements)
    design = ScaleDesign(heads=tuple(sorted(args.heads)), test_per_class=args.test_per_class, seed=args.seed)
    train = pool_features("train", args.seed, design.counts(max(design.heads)), root=args.feature_root)
    test = pool_features("test", args.seed, [args.test_per_class] * design.num_classes, root=args.feature_root)
    features_seconds = time.perf_counter() - started
    sizes = run_sizes(train, test, design, Path(args.work) / f"seed{args.seed}_test{args.test_per_class}")
    rows = scale_rows(sizes)
    statements = list(dict.fromkeys(r["statement"] for r in rows))
    doc = {
        "population": f"scitiles-pop's stated law P_c (data/population.py), DINOv2-S/14 frozen at 98 px; training "
                      f"samples = prefixes of the 'train' stream (seed {args.seed}) at imbalance 100; population "
                      f"errors on {args.test_per_class} i.i.d. draws per class of the 'test' stream (seed "
                      f"{args.seed}), two-sided 95 % intervals (THEORY §0)",
        "design": design.to_dict(), "sizes": [{"head": s["head"], "n": s["n"], "counts": s["counts"],
                                               "alpha": s["alpha"], "seconds": s["seconds"]} for s in sizes],
        "validity": "fixed-features: the backbone is fixed before the sample, so every uniform statement and "
                    "PAC-Bayes is a certificate on the whole training sample",
        "crossings": {name: crossings(rows, name) for name in statements},
        "benchmarks": benchmark_table(rows),
        "wall_seconds": {"features": features_seconds, "sizes": {s["head"]: s["seconds"] for s in sizes},
                         "this_invocation": time.perf_counter() - started},
        "rows": rows,
    }
    (out / "scale.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "scale.md").write_text(markdown(doc))
    figure(rows, out / "scale.png")
    print(f"wrote {out / 'scale.json'}, scale.md, scale.png ({time.perf_counter() - started:.0f} s)")
    return 0


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and (x >= 1e4 or (0 < x < 1e-3)):
        return f"{x:.2g}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def fmt_n(x: float | None) -> str:
    """An n (None: the record has no projection, or its margin loss alone keeps it at or above 1)."""
    if x is None:
        return "–"
    return f"{x:,.0f}" if x < 1e6 else f"{x:.1e}"


def markdown(doc: dict) -> str:
    rows = doc["rows"]
    ns = sorted({r["n"] for r in rows})
    lines = ["### Best value per target and size (tightest uniform; PAC-Bayes; test-set certificate; population "
             "error with 95 % interval)", "",
             "| n | target | tightest uniform (floor) | attained by | PAC-Bayes | test-set cert. | population error |",
             "|---:|---|---:|---|---:|---:|---|"]
    get = {(r["n"], r["statement"], r["target"]): r for r in rows}
    for n in ns:
        for t in PANELS:
            tu, pb, ts = (get.get((n, s, t)) for s in ("tightest_uniform", "pac_bayes", "testset_certificate"))
            if tu is None:
                continue
            lo, hi = tu["population_interval"]
            lines.append(f"| {n:,} | {t} | {fmt(tu['bound'])} ({fmt(tu['floor'])}) | "
                         f"{tu['terms'].get('attained_by', '')} | {fmt(pb and pb['bound'])} | "
                         f"{fmt(ts and ts['bound'])} | {tu['population_error']:.4f} [{lo:.4f}, {hi:.4f}] |")
    lines += ["", "### n at which each target turns non-vacuous: measured against predicted from the smallest size",
              "", "| statement | target | measured n | predicted at smallest n | predicted at largest n | "
                  "bound at largest n (floor) |", "|---|---|---:|---:|---:|---:|"]
    for name in SHOWN:
        for t, c in doc["crossings"].get(name, {}).items():
            if t not in PANELS:
                continue
            lines.append(f"| {name} | {t} | {fmt_n(c['measured_n']) if c['measured_n'] else 'not within the sizes'} "
                         f"| {fmt_n(c['predicted_n_at_smallest'])} | {fmt_n(c['predicted_n_at_largest'])} | "
                         f"{fmt(c['bound_at_largest'])} ({fmt(c['floor_at_largest'])}) |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 9), sharex=True)
    colors = dict(zip(SHOWN, ("tab:blue", "tab:purple", "tab:brown", "tab:pink", "tab:green", "tab:orange")))
    for ax, target in zip(axes.ravel(), PANELS):
        for name in SHOWN:
            sel = sorted((r for r in rows if r["statement"] == name and r["target"] == target), key=lambda r: r["n"])
            if not sel:
                continue
            n = [r["n"] for r in sel]
            ax.plot(n, [r["bound"] for r in sel], "o-", color=colors[name], ms=3, lw=1.3, label=name)
            if name == "tightest_uniform":
                ax.plot(n, [r["floor"] for r in sel], "--", color=colors[name], lw=1, label="tightest uniform: floor")
        sel = sorted((r for r in rows if r["statement"] == "tightest_uniform" and r["target"] == target),
                     key=lambda r: r["n"])
        if sel:
            n = np.array([r["n"] for r in sel])
            err = np.array([r["population_error"] for r in sel])
            lo = np.array([r["population_interval"][0] for r in sel])
            hi = np.array([r["population_interval"][1] for r in sel])
            floor = 1e-4
            ax.errorbar(n, np.maximum(err, floor), yerr=[np.maximum(err, floor) - np.maximum(lo, floor),
                                                         np.maximum(hi, floor) - np.maximum(err, floor)],
                        fmt="s", color="k", ms=4, capsize=2, label="population error (95 %)")
        ax.axhline(1.0, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("training sample size n")
    axes[0, 0].set_ylabel("bound / error")
    axes[1, 0].set_ylabel("bound / error")
    handles: dict = {}
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle("Frozen DINOv2-S/14 SciLT heads on scitiles-pop: bounds, floors and population error against n "
                 "(imbalance 100; dotted: 1)", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
