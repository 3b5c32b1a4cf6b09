"""Compare methods on one data set: ``python -m experiments.compare --dataset NAME --methods a,b --seeds 0,1,2
--out DIR``.

Trains every method × seed with the same data, recipe and budget (``--recipe NAME`` of scilt_theory/recipes.py,
default the demo's ``dinov2-adaptformer``; ``scratch`` is the first release's from-scratch ViT-Tiny; any option of
``python -m experiments.train`` given here applies to every run and overrides the recipe) with the library's
``training.train``, computes each run's bounds with ``scilt_theory.bounds_report`` (what ``python -m
experiments.bounds`` runs), and writes DIR/compare.json, DIR/compare.md (mean ± std over seeds of balanced
accuracy, Many/Medium/Few, worst class, the overall and worst-class bounds, the ERCs) and
DIR/compare_bound_vs_tail_error.png/.pdf.

Resumable: each run lives in DIR/runs/METHOD/seedS with its identity in compare_args.json: its resolved configs
(scilt_theory/run_identity.py), not the spelling of the options, so ``--out DIR`` and ``--out DIR/`` or ``--lr 1e-3``
and ``--lr 0.001`` are the same run. A finished run or bounds report of the same identity is reused, a run that was
killed continues from its last periodic checkpoint (``--save-every``), and a run of another identity is refused rather
than mixed into the table. A compare_args.json written by an older version holds the run's argument list: it is
resolved to configs the same way, so those runs are reused too.

References (``--references linear_probe``): rows that train nothing and have no bounds (their bound columns show
"—"). ``linear_probe`` fits scikit-learn logistic regression (class-balanced, lbfgs; C by stratified CV on the fit
split as the main number, C = 1 beside it) on the L2-normalised penultimate CLS, the final CLS and both concatenated
of the frozen backbone of the runs' own model config with adapter none (same data, hold-out split, weights, image
size and seed; scilt_theory/linear_probe.py): rows linear_probe[penultimate], linear_probe[final],
linear_probe[both], one result per seed in DIR/references/linear_probe/seedS/linear_probe.json (reused when made
with the same arguments).

Paired differences (``--paired-reference NAME[,NAME...]``, default final_only when it is compared): per method, the
difference to each NAME on the same seed (same split and initialisation) of balanced, Few and worst-class accuracy:
mean, sample std, number of pairs, 95 % t-interval and paired t-test p-value (scilt_theory/compare.py
``paired_differences``), one table per NAME in compare.md and one entry per NAME in compare.json ``paired`` (a
list, in the order given; each entry names its ``reference``); a method whose seeds differ from NAME's is paired on
the common seeds only, and the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

from experiments._cli import OneLineParser, UserError, run_main

#: reference rows compare can add (--references): name -> the rows it makes
REFERENCES = {"linear_probe": ("linear_probe[penultimate]", "linear_probe[final]", "linear_probe[both]")}

#: train options that compare sets per run itself
OWNED = ("--method", "--seed", "--out", "--resume", "--dataset", "--quiet", "--save-every", "--feature-store",
         "--recipe", "--overwrite")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: "--seed 3" must reach the check that refuses train's --seed, not become "--seeds 3"
    p = OneLineParser(prog="python -m experiments.compare", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                      epilog="Any other option is an option of python -m experiments.train and applies to every run.")
    p.add_argument("--dataset", default="scitiles-pop", help="data set of every run (default: scitiles-pop)")
    from scilt_theory.recipes import DEFAULT_RECIPE, RECIPES

    p.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME",
                   help="training recipe of every run (scilt_theory/recipes.py): "
                        + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
                        + f" (default: {DEFAULT_RECIPE}; the DINOv2 recipes load their named backbone weights, "
                          "fetched and converted on first use)")
    p.add_argument("--methods", default="all",
                   help="comma-separated method names, or 'all' (default); see python -m experiments.train --help")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--references", default="",
                   help="comma-separated reference rows that train nothing and have no bounds: linear_probe "
                        "(logistic regression on the frozen backbone's L2-normalised penultimate / final / both CLS "
                        "features, C by stratified CV; rows linear_probe[penultimate], [final], [both]); default none")
    p.add_argument("--paired-reference", default=None, metavar="NAME[,NAME...]",
                   help="methods (or reference rows), comma-separated, every other one is paired with by seed for the "
                        "differences of balanced, Few and worst-class accuracy (mean, std, 95%% t-interval, paired "
                        "t-test): one table per NAME; default final_only when it is compared, else no paired table")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of every run (default: the recipe's)")
    p.add_argument("--out", required=True, help="output directory (runs/, compare.json, compare.md, the figure)")
    p.add_argument("--draws", type=int, default=1000,
                   help="Monte Carlo sign draws of each bounds run, at most 1,000,000 (default 1000)")
    p.add_argument("--save-every", type=int, default=20,
                   help="periodic checkpoint every N optimiser steps, so a killed comparison resumes mid-run "
                        "(0 = off; default 20)")
    p.add_argument("--run-plots", action="store_true", help="also write each run's bounds figures")
    p.add_argument("--no-feature-store", action="store_true",
                   help="extract every run's features itself instead of sharing DIR/feature_store (same numbers)")
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
    from scilt_theory.recipes import RECIPES

    if args.recipe not in RECIPES:
        raise UserError(f"unknown recipe {args.recipe!r}; choose from {', '.join(RECIPES)}")
    methods = list(METHODS) if args.methods.strip() == "all" else _names(args.methods, "methods")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    references = _names(args.references, "references") if args.references.strip() else []
    unknown = [r for r in references if r not in REFERENCES]
    if unknown:
        raise UserError(f"unknown reference {unknown[0]!r}; choose from {', '.join(REFERENCES)}")
    args.reference_list = references
    rows_named = methods + [row for r in references for row in REFERENCES[r]]
    if args.paired_reference is not None:
        paired = _names(args.paired_reference, "paired-reference")
        missing = [name for name in paired if name not in rows_named]
        if missing:
            raise UserError(f"--paired-reference {missing[0]!r} is not compared here; choose from "
                            f"{', '.join(rows_named)}")
        args.paired_list = paired
    else:
        args.paired_list = ["final_only"] if "final_only" in rows_named else []
    seeds = _names(args.seeds, "seeds", int)
    if any(s < 0 for s in seeds):
        raise UserError("--seeds must be non-negative")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    if args.draws < 1 or args.save_every < 0:
        raise UserError("--draws must be at least 1 and --save-every non-negative")
    from scilt_theory.resources import MAX_DRAWS

    if args.draws > MAX_DRAWS:  # refused before the first run trains, not by its bounds afterwards
        raise UserError(f"--draws must be at most {MAX_DRAWS:,} (the bounds command's limit), got {args.draws:,}")
    # train's parser accepts abbreviations, so "--met x" would set --method: refuse prefixes of owned options too
    owned = [a.split("=", 1)[0] for a in extra if a.startswith("--")
             and any(o.startswith(a.split("=", 1)[0]) for o in OWNED)]
    if owned:
        raise UserError(f"{owned[0]} is set by compare for each run; leave it out")
    from experiments.train import check_data_memory

    for method in methods:  # every run's configs are valid before the first one starts (no weights file is read)
        data_config = run_configs(args, extra, method, seeds[0], "probe")[0]
    if methods:
        check_data_memory(data_config)
    args.weights = None  # the recipe's named backbone file: main() fetches it (or reuses it) before any run
    return args, extra, methods, seeds


def train_args(args, extra: list[str], method: str, seed: int, out: str | Path) -> list[str]:
    """The arguments of ``python -m experiments.train`` for one run (the options given win over the recipe)."""
    epochs = ["--epochs", str(args.epochs)] if args.epochs is not None else []
    return ["--dataset", args.dataset, "--recipe", args.recipe, *epochs, *extra, "--method", method, "--seed",
            str(seed), "--out", str(out)]


def run_configs(args, extra: list[str], method: str, seed: int, out: str | Path):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) of one run, resolved and checked as the train command
    would (``args.weights``: the recipe's backbone file once fetched)."""
    from experiments.train import resolve_configs

    return resolve_configs(train_args(args, extra, method, seed, out), weights=getattr(args, "weights", None))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def feature_store(args) -> str | None:
    """The comparison's shared feature store (scilt_theory/feature_store.py): runs of one seed on a frozen backbone,
    and the two bounds passes of a run, extract their features once. It changes no number, so it is not part of
    what identifies a run."""
    return None if args.no_feature_store else str(Path(args.out) / "feature_store")


def stored_identity(saved: dict, key: str) -> dict | None:
    """The identity a compare_args.json holds under ``key`` ("run" or "bounds"); one written by an older version
    holds argument lists ("train", "bounds"), resolved here to configs like a new run's (None if they no longer
    resolve: then the run counts as made with other settings)."""
    from scilt_theory.run_identity import bounds_identity, run_identity

    if isinstance(saved.get(key), dict):
        return saved[key]
    legacy = saved.get("train" if key == "run" else "bounds")
    if not isinstance(legacy, list):
        return None
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):  # an argument list this version's parsers refuse is simply not reused
            if key == "run":
                from experiments.train import resolve_configs

                return run_identity(*resolve_configs([str(a) for a in legacy]))
            from experiments import bounds as bounds_cli
            from experiments._cli import dataclass_from_args
            from scilt_theory.bounds_pipeline import BoundsSettings

            parsed = bounds_cli.build_parser().parse_args([str(a) for a in legacy])
            return bounds_identity(dataclass_from_args(BoundsSettings, parsed, progress=False),
                                   plots=not parsed.no_plots)
    except (UserError, ValueError, TypeError, SystemExit):
        return None


def _train(configs, resume: Path | None, args, out: Path) -> None:
    """One training run through the library (quiet, with compare's periodic saves and feature store)."""
    from scilt_theory.training import train

    data_config, model_config, train_config, method_config = configs
    train_config = dataclasses.replace(train_config, out=str(out), quiet=True, save_every=args.save_every,
                                       feature_store=feature_store(args))
    train(data_config, model_config, train_config, method=method_config, resume=resume)


def _bounds(ckpt: Path, out: Path, settings, plots: bool) -> None:
    """One bounds report through the library (scilt_theory.bounds_report), written into ``out`` as a whole."""
    from scilt_theory.api import bounds_report

    started = time.perf_counter()
    report = bounds_report(ckpt, settings)
    report.timing["total_seconds"] = time.perf_counter() - started
    report.write(out, plots=plots)


def run_one(args, extra, method: str, seed: int, run_dir: Path) -> dict:
    """Train (or reuse / continue) one run and compute (or reuse) its bounds; returns what the table needs."""
    from scilt_theory.bounds_pipeline import BoundsSettings
    from scilt_theory.checkpoint import CheckpointError, atomic_write_text
    from scilt_theory.run_identity import bounds_identity, run_identity
    from scilt_theory.run_record import read_run

    ckpt = run_dir / "run.pt"
    sidecar = run_dir / "compare_args.json"
    configs = run_configs(args, extra, method, seed, run_dir)
    wanted = run_identity(*configs)
    saved = _read_json(sidecar) or {}
    timing = {"train_seconds": 0.0, "bounds_seconds": 0.0, "reused_run": False, "reused_bounds": False}
    started = time.perf_counter()
    if ckpt.exists():
        if stored_identity(saved, "run") != wanted:
            raise UserError(f"{run_dir} holds a run made with other settings; give another --out or delete it")
        if not read_run(ckpt, allow_unfinished=True).finished:
            _train(configs, ckpt, args, run_dir)
        else:
            timing["reused_run"] = True
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps({"run": wanted}, indent=1) + "\n", sidecar)
        _train(configs, None, args, run_dir)
    timing["train_seconds"] = time.perf_counter() - started

    bounds_dir = run_dir / "bounds"
    settings = BoundsSettings(draws=args.draws, progress=False, feature_store=feature_store(args))
    wanted_bounds = bounds_identity(settings, plots=args.run_plots)
    report = _read_json(bounds_dir / "bounds.json")
    from scilt_theory.schema import SCHEMA_VERSION

    fresh = (report is not None and report.get("schema_version") == SCHEMA_VERSION and timing["reused_run"]
             and stored_identity(saved, "bounds") == wanted_bounds
             and (bounds_dir / "bounds.json").stat().st_mtime >= ckpt.stat().st_mtime)
    started = time.perf_counter()
    if fresh:
        timing["reused_bounds"] = True
    else:
        _bounds(ckpt, bounds_dir, settings, plots=args.run_plots)
        report = _read_json(bounds_dir / "bounds.json")
        atomic_write_text(json.dumps({"run": wanted, "bounds": wanted_bounds}, indent=1) + "\n", sidecar)
    timing["bounds_seconds"] = time.perf_counter() - started
    try:
        metrics = read_run(ckpt).metrics
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    return {"metrics": metrics, "bounds": report, "timing": timing}


def run_reference(args, extra, name: str, seed: int, ref_dir: Path) -> dict:
    """Compute (or reuse) one reference result (``linear_probe``) of one seed; returns its JSON."""
    from scilt_theory.checkpoint import atomic_write_text
    from scilt_theory.linear_probe import run_linear_probe
    from scilt_theory.run_identity import run_identity

    data_config, model_config, train_config, method_config = run_configs(args, extra, "scilt", seed, ref_dir)
    wanted = run_identity(data_config, model_config, train_config, method_config)
    result_path, sidecar = ref_dir / f"{name}.json", ref_dir / "compare_args.json"
    saved, result = _read_json(sidecar) or {}, _read_json(result_path)
    same = stored_identity(saved, "run") == wanted
    if result is not None and same:
        return {**result, "reused": True}
    if result_path.exists() and not same:
        raise UserError(f"{ref_dir} holds a {name} result made with other settings; give another --out or delete it")
    train_config = dataclasses.replace(train_config, feature_store=feature_store(args))
    result = run_linear_probe(data_config, model_config, train_config)
    ref_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps({"run": wanted}, indent=1) + "\n", sidecar)
    atomic_write_text(json.dumps(result, indent=1, allow_nan=False) + "\n", result_path)
    return {**result, "reused": False}


def probe_rows(result: dict, seed: int) -> list[dict]:
    """The rows linear_probe[VIEW] of one seed's probe result (the CV-chosen C; C = 1 beside it)."""
    from scilt_theory.compare import reference_row

    rows = []
    for view, entry in result["views"].items():
        c1 = entry["c1"]["metrics"]
        rows.append(reference_row(f"linear_probe[{view}]", seed, entry["cv"]["metrics"], probe_c=entry["cv"]["C"],
                                  c1_balanced_accuracy=c1["balanced_accuracy"],
                                  c1_few_accuracy=(c1.get("group_accuracy") or {}).get("few"),
                                  c1_worst_class_accuracy=c1["worst_class"]["accuracy"]))
    return rows


def probe_markdown(summary: dict, rows: list[dict], names: list[str]) -> str:
    """The linear probe at the CV-chosen C against C = 1 (balanced accuracy, mean ± std over seeds)."""
    from scilt_theory.compare import _cell

    lines = ["## Linear probe: C chosen by cross-validation (main rows) and C = 1", "",
             "| reference | C chosen per seed | balanced acc, CV C | balanced acc, C = 1 | Few, C = 1 | "
             "worst class, C = 1 |", "|---|---:|---:|---:|---:|---:|"]
    for name in names:
        stats = summary[name]
        chosen = ", ".join(f"{r['probe_c']:g}" for r in rows if r["method"] == name)
        lines.append(f"| {name} | {chosen} | {_cell(stats['balanced_accuracy'], 'acc')} | "
                     f"{_cell(stats['c1_balanced_accuracy'], 'acc')} | {_cell(stats['c1_few_accuracy'], 'acc')} | "
                     f"{_cell(stats['c1_worst_class_accuracy'], 'acc')} |")
    lines += ["", "Logistic regression (class_weight balanced, lbfgs) on the frozen backbone's L2-normalised CLS "
                  "features of the fit split; C from {0.01, 0.1, 1, 10, 100, 1000} by stratified k-fold CV "
                  "(balanced accuracy, k = min(5, smallest class)). Accuracies in % on the balanced test split."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, extra, methods, seeds = parse(argv)
    from scilt_theory.recipes import get_recipe

    named = get_recipe(args.recipe).weights
    if named is not None:  # a DINOv2 recipe fetches / converts (or reuses) its backbone here, once for every run
        from scilt_theory.pretrained import pretrained_weights

        args.weights = str(pretrained_weights(named))
    from scilt_theory.checkpoint import atomic_write_text, check_output_dir
    from scilt_theory.compare import (
        compare_markdown,
        paired_differences,
        rank_correlations,
        rank_markdown,
        run_row,
        summarise,
    )
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
    references: dict = {}
    reference_names: list[str] = []
    for name in args.reference_list:
        references[name] = {}
        for seed in seeds:
            if not args.quiet:
                print(f"[compare] reference {name} seed {seed} …", flush=True)
            try:
                result = run_reference(args, extra, name, seed, out / "references" / name / f"seed{seed}")
            except (ValueError, FloatingPointError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"{name} seed {seed}: {first}") from None
            references[name][str(seed)] = result
            rows.extend(probe_rows(result, seed))
        reference_names += list(REFERENCES[name])
    compared = methods + reference_names
    summary = summarise(rows, compared)
    paired = [paired_differences(rows, compared, reference=name) for name in args.paired_list]
    ranks = rank_correlations(rows)  # the references' rows have no bounds and drop out
    seconds = time.perf_counter() - started
    notes = sorted({note for m in methods for note in get_method(m).notes})
    if reference_names:
        notes.append("linear_probe[…] rows train nothing and have no bounds: logistic regression on the frozen "
                     "backbone's CLS features (runs' model config with adapter none), C by stratified CV; "
                     "the C = 1 numbers are in the table below and in compare.json")
    title = f"Methods on {args.dataset} (recipe {args.recipe}), seeds {','.join(map(str, seeds))}"
    recipe = train_args(args, extra, "METHOD", 0, "DIR")
    payload = {"dataset": args.dataset, "recipe": args.recipe, "methods": methods, "seeds": seeds,
               "train_args": recipe,
               "references": references, "reference_rows": reference_names, "paired": paired,
               "summary": summary, "rank_correlation": ranks, "rows": rows, "runs": runs, "notes": notes,
               "methods_summary": {m: get_method(m).summary for m in methods},
               "seconds": seconds, "trained_seconds": sum(r["train_seconds"] for r in runs if not r["reused_run"])}
    atomic_write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", out / "compare.json")
    sections = [probe_markdown(summary, rows, reference_names)] if reference_names else []
    sections.append(rank_markdown(ranks))
    atomic_write_text(compare_markdown(summary, title=title, notes=[
        f"recipe: python -m experiments.train {' '.join(recipe)}", *notes], paired=paired, sections=sections),
        out / "compare.md")
    # the figure plots bounds: the methods' rows only (references have none)
    written = plot_compare({m: summary[m] for m in methods}, out / "compare_bound_vs_tail_error", title=title)
    if not args.quiet:
        print(f"[compare] {total} runs in {seconds:.0f} s; wrote {out / 'compare.md'}, compare.json and "
              f"{', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
