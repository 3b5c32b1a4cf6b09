"""Compare methods on one data set: ``python -m experiments.compare --dataset NAME --methods a,b --seeds 0,1,2
--out DIR``.

Trains every method × seed with the same data, recipe and budget (``experiments.recipes.CPU_RECIPE`` unless
overridden: any option of ``python -m experiments.train`` given here is passed to every run), runs
``python -m experiments.bounds`` on each, and writes DIR/compare.json, DIR/compare.md (mean ± std over seeds of
balanced accuracy, Many/Medium/Few, worst class, the overall and worst-class bounds, the ERCs) and
DIR/compare_bound_vs_tail_error.png/.pdf.

Resumable: each run lives in DIR/runs/METHOD/seedS with the arguments it was made with; a finished run or bounds
report made with the same arguments is reused, a run that was killed continues from its last periodic checkpoint
(``--save-every``), and a run made with other arguments is refused rather than mixed into the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments._cli import OneLineParser, UserError, run_main

#: train options that compare sets per run itself (so the arguments a run is identified by never hold --quiet or
#: --save-every, the two that may differ between a run and its continuation)
OWNED = ("--method", "--seed", "--out", "--resume", "--dataset", "--quiet", "--save-every")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: "--seed 3" must reach the check that refuses train's --seed, not become "--seeds 3"
    p = OneLineParser(prog="python -m experiments.compare", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                      epilog="Any other option is an option of python -m experiments.train and applies to every run.")
    p.add_argument("--dataset", default="scitiles-lt", help="data set of every run (default: scitiles-lt)")
    p.add_argument("--methods", default="all",
                   help="comma-separated method names, or 'all' (default); see python -m experiments.train --help")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every run (default: the recipe's)")
    p.add_argument("--out", required=True, help="output directory (runs/, compare.json, compare.md, the figure)")
    p.add_argument("--draws", type=int, default=1000, help="Monte Carlo sign draws of each bounds run")
    p.add_argument("--save-every", type=int, default=20,
                   help="periodic checkpoint every N optimiser steps, so a killed comparison resumes mid-run "
                        "(0 = off; default 20)")
    p.add_argument("--run-plots", action="store_true", help="also write each run's bounds figures")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _names(text: str, what: str, convert=str) -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"--{what} needs at least one value")
    try:
        values = [convert(t) for t in items]
    except ValueError:
        raise UserError(f"--{what} must be a comma-separated list of whole numbers, got {text!r}") from None
    if len(set(values)) < len(values):
        raise UserError(f"--{what} repeats a value: {text!r}")
    return values


def parse(argv: list[str] | None):
    args, extra = build_parser().parse_known_args(argv)
    from scilt_theory.methods import METHODS

    methods = list(METHODS) if args.methods.strip() == "all" else _names(args.methods, "methods")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    seeds = _names(args.seeds, "seeds", int)
    if any(s < 0 for s in seeds):
        raise UserError("--seeds must be non-negative")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    if args.draws < 1 or args.save_every < 0:
        raise UserError("--draws must be at least 1 and --save-every non-negative")
    # train's parser accepts abbreviations, so "--met x" would set --method: refuse prefixes of owned options too
    owned = [a.split("=", 1)[0] for a in extra if a.startswith("--")
             and any(o.startswith(a.split("=", 1)[0]) for o in OWNED)]
    if owned:
        raise UserError(f"{owned[0]} is set by compare for each run; leave it out")
    from experiments import train as train_cli

    for method in methods:  # every run's options are valid before the first one starts
        probe = train_cli.build_parser().parse_args(train_args(args, extra, method, seeds[0], "probe"))
        train_cli.refuse_contradictions(probe, train_cli.configs_from_args(probe)[3].method)
    return args, extra, methods, seeds


def train_args(args, extra: list[str], method: str, seed: int, out: str | Path) -> list[str]:
    """The arguments of ``python -m experiments.train`` for one run (later options win, so ``extra`` overrides
    the recipe)."""
    from experiments.recipes import CPU_RECIPE

    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    return ["--dataset", args.dataset, *CPU_RECIPE, *epochs, *extra, "--method", method, "--seed", str(seed),
            "--out", str(out)]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def run_one(args, extra, method: str, seed: int, run_dir: Path) -> dict:
    """Train (or reuse / continue) one run and compute (or reuse) its bounds; returns what the table needs."""
    from experiments import bounds as bounds_cli
    from experiments import train as train_cli
    from scilt_theory.checkpoint import CheckpointError, atomic_write_text, load_run

    ckpt = run_dir / "run.pt"
    sidecar = run_dir / "compare_args.json"
    wanted = train_args(args, extra, method, seed, run_dir)
    saved = _read_json(sidecar) or {}
    timing = {"train_seconds": 0.0, "bounds_seconds": 0.0, "reused_run": False, "reused_bounds": False}
    started = time.perf_counter()
    if ckpt.exists():
        if saved.get("train") != wanted:
            raise UserError(f"{run_dir} holds a run made with other settings; give another --out or delete it")
        record = load_run(ckpt, allow_unfinished=True)
        if record.get("finished", True) is False:
            train_cli.main(["--resume", str(ckpt), "--quiet", "--save-every", str(args.save_every)])
        else:
            timing["reused_run"] = True
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"train": wanted}, indent=1) + "\n", sidecar)
        train_cli.main([*wanted, "--quiet", "--save-every", str(args.save_every)])
    timing["train_seconds"] = time.perf_counter() - started

    bounds_dir = run_dir / "bounds"
    bounds_argv = ["--ckpt", str(ckpt), "--out", str(bounds_dir), "--draws", str(args.draws), "--quiet",
                   *([] if args.run_plots else ["--no-plots"])]
    report = _read_json(bounds_dir / "bounds.json")
    from scilt_theory.schema import SCHEMA_VERSION

    fresh = (report is not None and report.get("schema_version") == SCHEMA_VERSION and timing["reused_run"]
             and saved.get("bounds") == bounds_argv
             and (bounds_dir / "bounds.json").stat().st_mtime >= ckpt.stat().st_mtime)
    started = time.perf_counter()
    if fresh:
        timing["reused_bounds"] = True
    else:
        bounds_cli.main(bounds_argv)
        report = _read_json(bounds_dir / "bounds.json")
        atomic_write_text(json.dumps({"train": wanted, "bounds": bounds_argv}, indent=1) + "\n",
                          sidecar)
    timing["bounds_seconds"] = time.perf_counter() - started
    try:
        metrics = load_run(ckpt)["metrics"]
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    return {"metrics": metrics, "bounds": report, "timing": timing}


def main(argv: list[str] | None = None) -> int:
    args, extra, methods, seeds = parse(argv)
    from scilt_theory.checkpoint import atomic_write_text, check_output_dir
    from scilt_theory.compare import compare_markdown, run_row, summarise
    from scilt_theory.methods import get_method
    from scilt_theory.plotting import plot_compare

    out = check_output_dir(Path(args.out), create=True)
    started = time.perf_counter()
    rows, runs = [], []
    total = len(methods) * len(seeds)
    for i, (method, seed) in enumerate(((m, s) for m in methods for s in seeds), start=1):
        run_dir = out / "runs" / method / f"seed{seed}"
        if not args.quiet:
            print(f"[compare] {i}/{total} {method} seed {seed} …", flush=True)
        try:
            result = run_one(args, extra, method, seed, run_dir)
        except (ValueError, FloatingPointError) as exc:  # name the run in the one error line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{method} seed {seed}: {first}") from None
        row = run_row(method, seed, result["metrics"], result["bounds"])
        rows.append(row)
        runs.append({"method": method, "seed": seed, "dir": str(run_dir), **result["timing"]})
        if not args.quiet:
            t = result["timing"]
            how = "reused" if t["reused_run"] else f"trained in {t['train_seconds']:.0f} s"
            print(f"[compare]   {how}, bounds {t['bounds_seconds']:.0f} s: balanced acc "
                  f"{100 * row['balanced_accuracy']:.1f}%, few {100 * (row['few_accuracy'] or 0):.1f}%, "
                  f"bound {row['overall_bound']:.3g}", flush=True)
    summary = summarise(rows, methods)
    seconds = time.perf_counter() - started
    notes = sorted({note for m in methods for note in get_method(m).notes})
    title = f"Methods on {args.dataset}, seeds {','.join(map(str, seeds))}"
    recipe = train_args(args, extra, "METHOD", 0, "DIR")
    payload = {"dataset": args.dataset, "methods": methods, "seeds": seeds, "train_args": recipe,
               "summary": summary, "rows": rows, "runs": runs, "notes": notes,
               "methods_summary": {m: get_method(m).summary for m in methods},
               "seconds": seconds, "trained_seconds": sum(r["train_seconds"] for r in runs if not r["reused_run"])}
    atomic_write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", out / "compare.json")
    atomic_write_text(compare_markdown(summary, title=title, notes=[
        f"recipe: python -m experiments.train {' '.join(recipe)}", *notes]), out / "compare.md")
    written = plot_compare(summary, out / "compare_bound_vs_tail_error", title=title)
    if not args.quiet:
        print(f"[compare] {total} runs in {seconds:.0f} s; wrote {out / 'compare.md'}, compare.json and "
              f"{', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
