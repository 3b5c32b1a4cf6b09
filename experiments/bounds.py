"""Complexities and generalisation bounds of a trained model: ``python -m experiments.bounds --ckpt run.pt``.

Rebuilds the model from run.pt (weights-only load), re-creates its data split, extracts both CLS features in one
streamed pass per sample, and computes docs/THEORY.md's numbers: the empirical Rademacher complexities of F_{N-1},
F_N and their sum (Lemma 5.1), the coupled class and its tightness ratio, Theorem 5.3 overall and Corollary 5.4
per class / per Many-Medium-Few group / worst class, beside the empirical errors. Writes DIR/bounds.json
(schema in docs/bounds.md), DIR/report.md and the plots. Under ``torchrun --nproc_per_node N -m experiments.bounds``
the N processes share the feature extraction and rank 0 computes and writes the rest.

The Python API does the same in two calls (scilt_theory/api.py): ``report = scilt_theory.bounds_report(ckpt,
mode="certified")`` and ``report.write(out)``.

DIR is written as a whole: the files are made in a fresh temporary folder beside it, which then replaces DIR, so a
folder never mixes two runs and an error or Ctrl-C leaves the previous one as it was. A DIR holding anything the
command does not write (run.pt, a sub-folder) is refused before the work. Values of --draws, --margin-grid-size
and --delta beyond the declared limits, or an estimated memory above what the machine has, are refused before the
work too; a run expected to take long says so, and prints a line every 10 s when its output is not a terminal.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from experiments._cli import (
    OneLineParser,
    UserError,
    add_dataclass_options,
    dataclass_from_args,
    heartbeat,
    run_main,
    set_option_help,
)


def build_parser() -> argparse.ArgumentParser:
    from scilt_theory.bounds_pipeline import BoundsSettings
    from scilt_theory.resources import MAX_DRAWS, MAX_MARGIN_GRID, MIN_DELTA
    from scilt_theory.statements import STATEMENTS

    p = OneLineParser(prog="python -m experiments.bounds", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="run.pt written by python -m experiments.train")
    p.add_argument("--out", default=None,
                   help="output directory, replaced as a whole by each run (default: bounds/ next to the checkpoint)")
    add_dataclass_options(p, BoundsSettings, title="bounds (scilt_theory/bounds_pipeline.py BoundsSettings)",
                          skip=("progress",))
    set_option_help(p, "--draws", f"Monte Carlo sign draws, 1 to {MAX_DRAWS:,} (memory and time grow with them; "
                                  f"the estimate is checked before the work) (default: 1000)")
    set_option_help(p, "--margin-grid-size", f"number of ρ values in the auto grid, 1 to {MAX_MARGIN_GRID} "
                                             f"(default: 16)")
    set_option_help(p, "--delta", f"confidence parameter δ of each statement, in [{MIN_DELTA:g}, 1) (default: 0.05)")
    default = [name for name, s in STATEMENTS.items() if s.default]
    set_option_help(p, "--statements",
                    "bound statements to evaluate, any subset of: " + ", ".join(STATEMENTS)
                    + f". Default: every default one ({len(default)}). theorem53 and corollary54 are always added "
                      "(every view of the report is built on them), and the report says so")
    p.add_argument("--label", default=None, help="short name of this run in plots (default: the method name)")
    p.add_argument("--no-plots", action="store_true", help="write bounds.json and report.md only")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return p


def settings_from_args(args: argparse.Namespace):
    """The validated BoundsSettings of the options given (one UserError line for a bad value)."""
    from scilt_theory.bounds_pipeline import BoundsSettings
    from scilt_theory.resources import check_limits

    settings = dataclass_from_args(BoundsSettings, args, progress=not args.quiet)
    try:
        check_limits(draws=settings.draws, margin_grid_size=settings.margin_grid_size, delta=settings.delta,
                     margin_is_auto=settings.margin is None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    ckpt = Path(args.ckpt)
    if not ckpt.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
    return settings


def check_feature_store(path: str | None, out: Path | None = None) -> None:
    """A --feature-store that cannot be one (an existing file) or that lies inside a folder each run replaces."""
    if path is None:
        return
    store = Path(path)
    if store.exists() and not store.is_dir():
        raise UserError(f"--feature-store {store} is an existing file, not a folder; give a folder (it is created "
                        f"when missing)")
    if out is not None:
        resolved, folder = store.resolve(), out.resolve()
        if resolved == folder or folder in resolved.parents:
            raise UserError(f"--feature-store {store} lies inside --out {out}, which each run replaces as a whole; "
                            f"put the store beside it")


_EXACT = re.compile(r"more than max_exact_signs=(\d+) allows; use method=\"mc\".*$")


def _cli_words(message: str) -> str:
    """Library advice in the words of this command's options."""
    return _EXACT.sub(lambda m: f"more than --method exact enumerates (2^{m.group(1)}); use --method mc, or --method "
                                f"auto (exact only where it fits)", message)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    from dataclasses import replace

    from scilt_theory import distributed
    from scilt_theory.api import owned_by_bounds, prepare
    from scilt_theory.bounds_pipeline import compute_bounds_report
    from scilt_theory.checkpoint import CheckpointError, check_replaceable
    from scilt_theory.resources import format_seconds

    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent / "bounds"
    try:  # everything that needs no data, before the work: the folder, the store, the checkpoint, the limits
        check_replaceable(out, owned_by_bounds, "a bounds report")
        check_feature_store(settings.feature_store, out)
        settings, added, estimate = prepare(Path(args.ckpt), settings)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if added and not args.quiet:
        print(f"statements: added {', '.join(added)} to those asked for (every view of the report is built on them)")
    if estimate.seconds > 60 and not args.quiet:
        print(f"[bounds] estimated {estimate.describe()} (n = {estimate.n}, K = {estimate.num_classes}, "
              f"{settings.draws} draws, grid {settings.margin_grid_size})", flush=True)

    started = time.perf_counter()
    guess = f" (estimated {format_seconds(estimate.seconds)} for the complexities)" if estimate.seconds > 60 else ""
    with heartbeat("bounds", enabled=not args.quiet, estimate=guess) as beat:
        beat.phase = "features, complexities and statements"
        try:
            with distributed.launch(settings.device):  # torchrun: the processes share the feature extraction
                report = compute_bounds_report(Path(args.ckpt), settings)
        except CheckpointError as exc:
            raise UserError(str(exc)) from None
        except ValueError as exc:
            raise UserError(_cli_words(str(exc).strip().splitlines()[0] if str(exc).strip() else "")) from None
        if report is None:  # not rank 0: rank 0 computes the bounds and writes the files
            return 0
        from scilt_theory.api import as_api_report

        report = as_api_report(report)
        if settings.statements:
            report.settings["statements_requested"] = [s for s in settings.statements if s not in added]
            report.settings["statements_added"] = list(added)
        if args.label:
            report = replace(report, run=replace(report.run, label=args.label))
        report.timing["total_seconds"] = time.perf_counter() - started
        beat.phase = "writing report.md and the figures"
        try:
            written = report.write(out, plots=not args.no_plots)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if not args.quiet:
        print_report(report, out, written)
    return 0


def print_report(report, out: Path, written: list[Path]) -> None:
    """The lines a bounds run ends with: report.md's bottom line, where the report is, what was written."""
    for line in report.bottom_line():
        print(line)
    print(f"report: {out / 'report.md'}")
    print(f"wrote {len(written)} files into {out}: " + ", ".join(p.name for p in written))


if __name__ == "__main__":
    sys.exit(run_main(main))
