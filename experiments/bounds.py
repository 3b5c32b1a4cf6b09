"""Complexities and generalisation bounds of a trained model: ``python -m experiments.bounds --ckpt run.pt``.

Rebuilds the model from run.pt (weights-only load), re-creates its data split, extracts both CLS features in one
streamed pass per sample, and computes docs/THEORY.md's numbers: the empirical Rademacher complexities of F_{N-1},
F_N and their sum (Lemma 5.1), the coupled class and its tightness ratio, Theorem 5.3 overall and Corollary 5.4
per class / per Many-Medium-Few group / worst class, beside the empirical errors. Writes DIR/bounds.json
(schema in README.md), DIR/report.md and the plots. Under ``torchrun --nproc_per_node N -m experiments.bounds``
the N processes share the feature extraction and rank 0 computes and writes the rest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments._cli import OneLineParser, UserError, add_dataclass_options, dataclass_from_args, run_main


def build_parser() -> argparse.ArgumentParser:
    from scilt_theory.bounds_pipeline import BoundsSettings

    p = OneLineParser(prog="python -m experiments.bounds", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="run.pt written by python -m experiments.train")
    p.add_argument("--out", default=None, help="output directory (default: bounds/ next to the checkpoint)")
    add_dataclass_options(p, BoundsSettings, title="bounds (scilt_theory/bounds_pipeline.py BoundsSettings)",
                          skip=("progress",))
    p.add_argument("--label", default=None, help="short name of this run in plots (default: the method name)")
    p.add_argument("--no-plots", action="store_true", help="write bounds.json and report.md only")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return p


def settings_from_args(args: argparse.Namespace):
    """The validated BoundsSettings of the options given (one UserError line for a bad value)."""
    from scilt_theory.bounds_pipeline import BoundsSettings

    settings = dataclass_from_args(BoundsSettings, args, progress=not args.quiet)
    ckpt = Path(args.ckpt)
    if not ckpt.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    from dataclasses import replace

    from scilt_theory import distributed
    from scilt_theory.bounds_pipeline import compute_bounds_report
    from scilt_theory.checkpoint import CheckpointError, atomic_write_text, check_output_dir
    from scilt_theory.report import bounds_markdown

    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent / "bounds"
    check_output_dir(out)  # refuse a bad --out before the work, not after it

    started = time.perf_counter()
    try:
        with distributed.launch(settings.device):  # torchrun: the processes share the feature extraction
            report = compute_bounds_report(Path(args.ckpt), settings)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if report is None:  # not rank 0: rank 0 computes the bounds and writes the files
        return 0
    if args.label:
        report = replace(report, run=replace(report.run, label=args.label))
    check_output_dir(out, create=True)
    report.timing["total_seconds"] = time.perf_counter() - started
    atomic_write_text(report.dumps(), out / "bounds.json")
    atomic_write_text(bounds_markdown(report), out / "report.md")
    written = [out / "bounds.json", out / "report.md"]
    if not args.no_plots:
        from scilt_theory.plotting import write_all_plots

        written += write_all_plots(report, out)
    if not args.quiet:
        o = report.overall
        print(f"[{report.mode}] n={report.n} δ={report.delta}: overall bound {o.bound:.3g} "
              f"(margin loss {o.train_margin_loss:.3g} + complexity {o.complexity:.3g} + confidence "
              f"{o.confidence:.3g}); balanced test error {o.balanced_test_error:.3f}")
        for g, v in report.groups.items():
            if v.num_classes:
                bound = "n/a" if v.bound is None else f"{v.bound:.3g}"
                print(f"  {g:6s} ({v.num_classes} classes): bound {bound}, test error {v.test_error:.3f}")
        print(f"report: {out / 'report.md'}")
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
