"""Compare methods on one data set: ``python -m experiments.compare --dataset NAME --methods a,b --seeds 0,1,2
--out DIR``.

The command line of ``scilt_theory.comparison.run_comparison``: it parses, makes one call, and prints.

Trains every method × seed with the same data, recipe and budget (``--recipe NAME`` of scilt_theory/recipes.py,
default the demo's ``dinov2-adaptformer``; ``scratch`` is the first release's from-scratch ViT-Tiny; any option of
``python -m experiments.train`` given here applies to every run and overrides the recipe) with the library's
``training.train``, computes each run's bounds with ``scilt_theory.bounds_report`` (what ``python -m
experiments.bounds`` runs), and writes DIR/compare.json, DIR/compare.md (mean ± std over seeds of balanced
accuracy, Many/Medium/Few, worst class, the overall and worst-class bounds, the ERCs; Kendall τ across runs
between each bound and each error, and class by class: across runs for each class and within runs across classes,
compare.json ``class_rank_correlation``) and DIR/compare_bound_vs_tail_error.png/.pdf.

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
import sys

from experiments._cli import OneLineParser, UserError, run_main
from scilt_theory.comparison import REFERENCES, ComparisonConfig, OptionResolvers, default_paired_references

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
        args.paired_list = list(default_paired_references(rows_named))
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
    args.weights = None  # the recipe's named backbone file: run_comparison fetches it (or reuses it) before any run
    return args, extra, methods, seeds


def comparison_config(args: argparse.Namespace, extra: list[str], methods: list[str], seeds: list[int], *,
                      paired: bool = True) -> ComparisonConfig:
    """The comparison the parsed command line asks for (``extra``: the train options given for every run;
    ``paired=False``: without the paired tables, for a subset of the methods)."""
    paired_list = getattr(args, "paired_list", ()) if paired else ()
    return ComparisonConfig(dataset=args.dataset, recipe=args.recipe, methods=tuple(methods), seeds=tuple(seeds),
                            out=args.out, references=tuple(getattr(args, "reference_list", ())),
                            paired_references=tuple(paired_list), epochs=args.epochs,
                            train_overrides=tuple(extra), draws=args.draws, save_every=args.save_every,
                            feature_store=not args.no_feature_store, run_plots=args.run_plots,
                            progress=not args.quiet, weights=getattr(args, "weights", None))


def train_configs(argv: list[str], weights: str | None = None):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) of ``python -m experiments.train ARGV``."""
    from experiments.train import resolve_configs

    return resolve_configs(argv, weights=weights)


def bounds_settings(argv: list[str]):
    """(BoundsSettings, plots) of ``python -m experiments.bounds ARGV``, as compare runs it (no progress)."""
    from experiments import bounds as bounds_cli
    from experiments._cli import dataclass_from_args
    from scilt_theory.bounds_pipeline import BoundsSettings

    parsed = bounds_cli.build_parser().parse_args(argv)
    return dataclass_from_args(BoundsSettings, parsed, progress=False), not parsed.no_plots


#: how compare resolves the train and bounds commands' option lists (an older compare_args.json holds such lists)
RESOLVERS = OptionResolvers(train=train_configs, bounds=bounds_settings,
                            refusals=(UserError, ValueError, TypeError, SystemExit))


def run_configs(args: argparse.Namespace, extra: list[str], method: str, seed: int, out):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) of one run, resolved and checked as the train command
    would (``args.weights``: the recipe's backbone file once fetched)."""
    config = comparison_config(args, extra, [method], [seed], paired=False)
    return train_configs(config.train_argv(method, seed, out), weights=config.weights)


def main(argv: list[str] | None = None) -> int:
    config = comparison_config(*parse(argv))
    from scilt_theory.comparison import ComparisonError, run_comparison

    try:
        result = run_comparison(config, RESOLVERS, log=lambda line: print(line, flush=True))
    except ComparisonError as exc:
        raise UserError(str(exc)) from None
    if config.progress:
        print(f"[compare] {result.runs} runs in {result.seconds:.0f} s; wrote {result.markdown_path}, compare.json "
              f"and {', '.join(p.name for p in result.figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
