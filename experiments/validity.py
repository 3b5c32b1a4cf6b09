"""``python -m experiments.validity``: do the certificates hold? (issue 24; scilt_theory/validity.py)

Population: the uniform distribution over a pool of ``--pool-per-class`` i.i.d. draws per class of scitiles-pop's law
(the "test" stream at ``--pool-seed``), taken through the frozen DINOv2-S/14 at 98 px once and cached under
runs/feature_pool (scilt_theory/feature_pool.py). ``--repetitions`` times, with seeds 0 … R − 1: draw a long-tailed
training sample and a test sample from the pool with replacement, hold out 30 %, train the frozen recipe's heads,
certify, and compare every bound with the exact pool risk of the classifier it certifies. Every repetition is
written to ``--work`` as it finishes, so an interrupted run resumes. Writes ``--out``/coverage.json, coverage.md and
coverage.png.

    python -m experiments.validity                      # R = 200 at the demo's counts (about 1 h on 2 cores)
    python -m experiments.validity --repetitions 20 --out runs/validity_quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scilt_theory.frozen_heads import BoundSettings, HeadRecipe
from scilt_theory.validity import Population, ValidityDesign, coverage_document, run_repetitions, summary_table

DEMO_COUNTS = (500, 281, 158, 88, 50, 28, 15, 8, 5)
#: the rows of the summary table (coverage.md, RESULTS.md)
SUMMARY = ("holdout_certificate", "testset_certificate", "pac_bayes_holdout_prior", "pac_bayes", "tightest_uniform",
           "theorem53", "corollary54", "weighted_margin",
           "naive_training_error", "naive_holdout_error", "naive_test_error", "holdout_certificate@10delta",
           "holdout_certificate@half_confidence", "testset_certificate@10delta",
           "testset_certificate@half_confidence")


def population_sentence(per_class: int, split: str, seed: int, law: str) -> str:
    return (f"D_c = the uniform distribution over a fixed pool of {per_class} i.i.d. draws of scitiles-pop's law P_c "
            f"(the '{split}' stream at seed {seed}; {law}) taken once through the frozen DINOv2-S/14 at 98 px: samples "
            f"are drawn from the pool with replacement, so they are exactly i.i.d. from D_c, and the risk of every "
            f"classifier is the exact mean over the pool (no estimate)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.validity", description=__doc__.split("\n\n")[0])
    p.add_argument("--repetitions", type=int, default=200)
    p.add_argument("--first", type=int, default=0, help="first repetition seed")
    p.add_argument("--pool-per-class", type=int, default=3000)
    p.add_argument("--pool-split", default="test", choices=("train", "test", "validation"))
    p.add_argument("--pool-seed", type=int, default=0)
    p.add_argument("--counts", type=int, nargs="+", default=list(DEMO_COUNTS), help="training counts per class")
    p.add_argument("--holdout-fraction", type=float, default=0.3)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0, help="root seed of the repetitions' draws")
    p.add_argument("--statements", nargs="*", default=None, help="statement names (default: every default one)")
    p.add_argument("--work", default="runs/validity", help="folder of the per-repetition files (resumable)")
    p.add_argument("--out", default="docs/validity")
    p.add_argument("--feature-root", default="runs/feature_pool")
    p.add_argument("--aggregate-only", action="store_true", help="only aggregate the repetitions already in --work")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from scilt_theory.data.config import DataConfig
    from scilt_theory.data.population import law_of
    from scilt_theory.data.scitiles import SCITILES_SOURCES
    from scilt_theory.feature_pool import IMAGE_SIZE, pool_features

    args = parse(argv)
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and leaves the other core to the machine's users
    started = time.perf_counter()
    design = ValidityDesign(train_counts=tuple(args.counts), holdout_fraction=args.holdout_fraction,
                            test_per_class=args.test_per_class, seed=args.seed, recipe=HeadRecipe(),
                            bounds=BoundSettings(delta=args.delta,
                                                 statements=tuple(args.statements) if args.statements else None))
    k = len(args.counts)
    feats = pool_features(args.pool_split, args.pool_seed, [args.pool_per_class] * k, root=args.feature_root)
    law = law_of(DataConfig(name="scitiles-pop", image_size=IMAGE_SIZE, seed=args.pool_seed)).sentence()
    sentence = population_sentence(args.pool_per_class, args.pool_split, args.pool_seed, law)
    pop = Population.from_features(feats.phi1, feats.phi2, feats.labels, sentence, SCITILES_SOURCES[:k])
    pool_seconds = time.perf_counter() - started
    work = Path(args.work) / f"counts{'-'.join(map(str, args.counts))}_pool{args.pool_per_class}"
    if args.aggregate_only:
        reps = [json.loads(p.read_text()) for p in sorted(work.glob("rep*.json"))]
    else:
        reps = run_repetitions(pop, design, range(args.first, args.first + args.repetitions), work)
    run_seconds = sum(rep["seconds"]["total"] for rep in reps)
    doc = coverage_document(reps, design, sentence, extra={
        "pool": {"split": args.pool_split, "seed": args.pool_seed, "per_class": args.pool_per_class,
                 "classes": list(SCITILES_SOURCES[:k])},
        "recipe": "frozen recipe (dinov2-frozen): alpha and two cosine heads (s = 25) on the cached CLS features, SGD "
                  "0.05 (alpha 0.5), momentum 0.9, weight decay 5e-4, 30 epochs of batch 64, 1 warm-up epoch + "
                  "cosine, LA-CE tau = 1, lambda = 1 (scilt_theory/frozen_heads.py)",
        "certified_classifier": "one classifier per repetition, trained on the fit part (70 %): the uniform statements "
                                "and PAC-Bayes (data-free prior) on the fit part, the hold-out certificate on the "
                                "held-out 30 %, the test-set certificate on the test sample (validity fixed-features, "
                                "as bounds_pipeline); pac_bayes_holdout_prior: PAC-Bayes on the held-out 30 % with "
                                "its prior centred at the fitted heads (fixed before that part; the certified mode "
                                "without the refit), overall = weighted by the held-out part's class proportions",
        "controls": "naive_*: the empirical value of each target on the fit part, the hold-out part, the test sample; "
                    "<certificate>@10delta: the statement evaluated at 10 delta; <certificate>@half_confidence: "
                    "(bound + empirical value)/2. Target 'all': a repetition violates when any target does.",
        "mean_alpha": float(sum(rep["alpha"] for rep in reps) / len(reps)),
        "wall_seconds": {"pool_features_read_or_extracted": pool_seconds, "repetitions_sum": run_seconds,
                         "per_repetition_mean": run_seconds / len(reps),
                         "this_invocation": time.perf_counter() - started,
                         "note": "repetitions_sum adds the repetitions' own times (read back from --work by an "
                                 "--aggregate-only run); pool_features and this_invocation are this invocation's"}})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coverage.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "coverage.md").write_text(markdown(doc))
    figure(doc, reps, out / "coverage.png")
    verdict = doc["verdict"]
    print(f"{len(reps)} repetitions; line {verdict['line']:.4f}; valid statements above it: "
          f"{verdict['valid_failing'] or 'none'}; controls without power: {verdict['controls_without_power'] or 'none'}"
          f"; non-vacuous on average: {', '.join(verdict['nonvacuous_statements'])}")
    print(f"wrote {out / 'coverage.json'}, coverage.md, coverage.png ({time.perf_counter() - started:.0f} s)")
    return 0


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(doc: dict) -> str:
    rows = summary_table(doc["statements"], [n for n in SUMMARY if any(r["name"] == n for r in doc["statements"])])
    lines = [f"Coverage over R = {doc['repetitions']} repetitions at δ = {doc['delta']} (acceptance line "
             f"δ + 3·√(δ(1 − δ)/R) = {doc['acceptance_line']:.4f}). Population: {doc['population']}.", "",
             "| statement | target | violations / R | rate | one-sided 95 % | mean bound | mean exact risk |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        ci = f"≤ {r['rate_upper95']:.3f}" if not r["mutant"] else f"≥ {r['rate_lower95']:.3f}"
        lines.append(f"| {r['name']}{' (control)' if r['mutant'] else ''} | {r['target']} | {r['violations']}/"
                     f"{r['repetitions']} | {r['rate']:.3f} | {ci} | {fmt(r['mean_bound'])} | "
                     f"{fmt(r['mean_risk'], 4)} |")
    return "\n".join(lines) + "\n"


def figure(doc: dict, reps: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = {(r["name"], r["target"]): r for r in doc["statements"]}
    names = [n for n in SUMMARY if (n, "all") in rows]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    ax = axes[0]
    y = np.arange(len(names))
    rates = [rows[(n, "all")]["rate"] for n in names]
    colors = ["tab:red" if rows[(n, "all")]["mutant"] else "tab:blue" for n in names]
    ax.barh(y, rates, color=colors)
    for i, n in enumerate(names):
        r = rows[(n, "all")]
        lo, hi = (r["rate_lower95"], r["rate"]) if r["mutant"] else (r["rate"], r["rate_upper95"])
        ax.plot([lo, hi], [i, i], color="k", lw=1)
    ax.axvline(doc["delta"], color="k", ls="--", lw=1, label=f"δ = {doc['delta']}")
    ax.axvline(doc["acceptance_line"], color="tab:orange", ls="-", lw=1.5,
               label=f"δ + 3√(δ(1−δ)/R) = {doc['acceptance_line']:.3f}")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("violation rate, target 'all' (any target violated); bar: one-sided 95 %")
    ax.set_title(f"Violations over R = {doc['repetitions']} (blue: statements, red: controls)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[1]
    for name, marker in (("naive_test_error", "x"), ("testset_certificate", "o"), ("holdout_certificate", "s"),
                         ("pac_bayes_holdout_prior", "D"), ("pac_bayes", "^"), ("tightest_uniform", "v")):
        pts = [({**rep["risk"], **rep.get("risk_overrides", {}).get(name, {})}["overall"],
                rep["bounds"][name]["overall"]) for rep in reps if "overall" in rep["bounds"].get(name, {})]
        if pts:
            risk, bound = np.array(pts).T
            ax.scatter(risk, bound, s=9, marker=marker, alpha=0.6, label=name)
    xs = [x for line in ax.collections for x in line.get_offsets()[:, 0]]
    lim = [0.8 * min(xs), 1.2 * max(xs)] if xs else [0.0, 1.0]
    ax.plot(lim, lim, color="k", lw=1, label="bound = exact risk")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlim(lim)
    ax.set_yscale("log")
    ax.set_xlabel("exact pool risk (prior-weighted error), per repetition")
    ax.set_ylabel("bound on it")
    ax.set_title("Overall target, every repetition: a point below the diagonal is a violation", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
