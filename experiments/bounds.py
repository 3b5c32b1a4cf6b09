"""Complexities and generalisation bounds of a trained model: ``python -m experiments.bounds --ckpt run.pt``.

Rebuilds the model from run.pt (weights-only load), re-creates its data split, extracts both CLS features in one
streamed pass per sample, and computes THEORY.md's numbers: the empirical Rademacher complexities of F_{N-1},
F_N and their sum (Lemma 5.1), the coupled class and its tightness ratio, Theorem 5.3 overall and Corollary 5.4
per class / per Many-Medium-Few group / worst class, beside the empirical errors. Writes DIR/bounds.json
(schema in README.md), DIR/report.md and the plots. Under ``torchrun --nproc_per_node N -m experiments.bounds``
the N processes share the feature extraction and rank 0 computes and writes the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments._cli import OneLineParser, UserError, run_main

MODES = {
    "diagnostic": "features from the model as trained. The backbone and adapters were fitted on the same sample "
                  "the bound is evaluated on, so the hypothesis class depends on the sample: the numbers are a "
                  "diagnostic of capacity and margins, not a certificate (THEORY §4, validity note).",
    "certified": "backbone and adapters were trained on one part of the training data only; the heads (and α) "
                 "are refitted on the held-out, disjoint part with the features frozen, and the bound is "
                 "evaluated there. The feature maps do not depend on that part, so Theorem 5.3 / Corollary 5.4 "
                 "hold as stated with probability ≥ 1 − δ − δ_mc (THEORY §4-5).",
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m experiments.bounds", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="run.pt written by python -m experiments.train")
    p.add_argument("--out", default=None, help="output directory (default: bounds/ next to the checkpoint)")
    p.add_argument("--mode", choices=sorted(MODES), default="diagnostic",
                   help="diagnostic: bound on the features as trained; certified: needs a run trained with "
                        "--holdout-fraction > 0, refits the heads on the held-out part (default: diagnostic)")
    p.add_argument("--delta", type=float, default=0.05, help="confidence parameter δ in (0, 1) (default 0.05)")
    p.add_argument("--delta-mc", type=float, default=0.01,
                   help="failure probability of the Monte Carlo certificates, in (0, 1) (default 0.01)")
    p.add_argument("--margin", default="auto",
                   help="margin ρ > 0, or 'auto': a geometric grid fixed before seeing the data, paid for by "
                        "δ/m (THEORY §4) (default auto)")
    p.add_argument("--margin-grid-size", type=int, default=16, help="number of ρ values in the auto grid")
    p.add_argument("--method", choices=("auto", "mc", "exact", "closed"), default="auto",
                   help="Rademacher estimator: auto = exact enumeration for small classes, certified Monte Carlo "
                        "otherwise (default auto)")
    p.add_argument("--draws", type=int, default=1000, help="Monte Carlo sign draws (default 1000)")
    p.add_argument("--coupled-subsample", type=int, default=2000,
                   help="largest sample on which the coupled-class ERC is computed (a seeded subsample beyond)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=256, help="feature-extraction batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the sign draws and subsamples")
    p.add_argument("--data-root", default=None,
                   help="where the run's real data set lies now, when it moved (its class counts are still "
                        "checked against run.pt)")
    p.add_argument("--test-root", default=None, help="imagefolder runs: where the test tree lies now")
    p.add_argument("--weights", default=None,
                   help="where the run's pretrained weights file lies now, when it moved (its sha256 is still "
                        "checked against run.pt)")
    p.add_argument("--label", default=None, help="short name of this run in plots (default: the method name)")
    p.add_argument("--no-plots", action="store_true", help="write bounds.json and report.md only")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return p


def validate(args: argparse.Namespace) -> None:
    if not 0 < args.delta < 1:
        raise UserError(f"--delta must lie strictly between 0 and 1, got {args.delta}")
    if not 0 < args.delta_mc < 1:
        raise UserError(f"--delta-mc must lie strictly between 0 and 1, got {args.delta_mc}")
    if args.draws < 1:
        raise UserError(f"--draws must be a positive number of sign draws, got {args.draws}")
    if args.margin_grid_size < 1:
        raise UserError(f"--margin-grid-size must be at least 1, got {args.margin_grid_size}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.coupled_subsample < 0:
        raise UserError(f"--coupled-subsample must be non-negative, got {args.coupled_subsample}")
    if args.margin != "auto":
        try:
            rho = float(args.margin)
        except ValueError:
            raise UserError(f"--margin must be 'auto' or a positive number, got {args.margin!r}") from None
        if not rho > 0 or rho == float("inf"):
            raise UserError(f"--margin must be a positive finite number, got {args.margin}")
    ckpt = Path(args.ckpt)
    if not ckpt.exists():
        raise UserError(f"checkpoint not found: {ckpt}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    from scilt_theory import distributed
    from scilt_theory.bounds_pipeline import BoundsSettings, compute_bounds_report
    from scilt_theory.checkpoint import CheckpointError, atomic_write_text, check_output_dir
    from scilt_theory.report import bounds_markdown

    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent / "bounds"
    check_output_dir(out)  # refuse a bad --out before the work, not after it

    started = time.perf_counter()
    settings = BoundsSettings(mode=args.mode, delta=args.delta, delta_mc=args.delta_mc,
                              margin=None if args.margin == "auto" else float(args.margin),
                              margin_grid_size=args.margin_grid_size, method=args.method, n_draws=args.draws,
                              coupled_subsample=args.coupled_subsample, device=args.device,
                              batch_size=args.batch_size, seed=args.seed, progress=not args.quiet,
                              mode_description=MODES[args.mode], data_root=args.data_root,
                              test_root=args.test_root, weights=args.weights)
    try:
        with distributed.launch(args.device):  # torchrun: the processes share the feature extraction
            report = compute_bounds_report(Path(args.ckpt), settings)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if report is None:  # not rank 0: rank 0 computes the bounds and writes the files
        return 0
    if args.label:
        report["label"] = args.label
    check_output_dir(out, create=True)
    report["timing"]["total_seconds"] = time.perf_counter() - started
    atomic_write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", out / "bounds.json")
    atomic_write_text(bounds_markdown(report), out / "report.md")
    written = [out / "bounds.json", out / "report.md"]
    if not args.no_plots:
        from scilt_theory.plotting import write_all_plots

        written += write_all_plots(report, out)
    if not args.quiet:
        o = report["overall"]
        print(f"[{report['mode']}] n={report['n']} δ={report['delta']}: overall bound {o['bound']:.3g} "
              f"(margin loss {o['empirical_margin_loss']:.3g} + complexity {o['complexity']:.3g} + confidence "
              f"{o['confidence']:.3g}); test error {o['test_error']:.3f}")
        for g, v in report["groups"].items():
            if v["num_classes"]:
                bound = "n/a" if v["bound"] is None else f"{v['bound']:.3g}"
                print(f"  {g:6s} ({v['num_classes']} classes): bound {bound}, test error {v['test_error']:.3f}")
        print(f"report: {out / 'report.md'}")
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
