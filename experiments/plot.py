"""Overlay several runs' bounds on one figure: ``python -m experiments.plot --bounds DIR [DIR ...]``.

Each DIR is an output directory of ``python -m experiments.bounds`` (it holds bounds.json, scilt_theory/schema.py); a
path to a bounds.json file is accepted too. Every input is read and checked before anything is drawn, so a bad
input ends in one line on stderr, exit status 2, and no file written. The figure (per-class Corollary 5.4 bound
and test error vs n_c, and the group means, one colour and marker per run) goes to PATH_STEM.png and .pdf.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

from experiments._cli import OneLineParser, UserError, run_main  # noqa: E402

SUFFIXES = (".png", ".pdf")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m experiments.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("--bounds", nargs="+", required=True, metavar="DIR",
                   help="output directories of python -m experiments.bounds (each with a bounds.json)")
    p.add_argument("--out", default=None, metavar="PATH_STEM",
                   help="figure path without extension; .png and .pdf are written "
                        "(default: the first DIR's parent / overlay)")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="legend name of each run, in the order of --bounds (default: each report's label, "
                        "else the directory name)")
    return p


def read_report(source: Path):
    """Read and check the bounds.json in ``source`` (a directory, or the file itself) as a BoundsReport."""
    from scilt_theory.schema import BoundsReport

    path = source / "bounds.json" if source.is_dir() else source
    if not source.exists():
        raise UserError(f"no such bounds directory: {source}")
    if not path.is_file():
        raise UserError(f"{source} has no bounds.json (run python -m experiments.bounds first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") \
            from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return BoundsReport.from_json(data, source=str(path))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _run_name(source: Path) -> str:
    """Directory name that identifies a run: skip a generic last component such as 'bounds'."""
    directory = source if source.is_dir() else source.parent
    directory = directory.resolve()
    if directory.name in ("bounds", "out", "output") and directory.parent.name:
        return directory.parent.name
    return directory.name


def _plot(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    sources = [Path(d) for d in args.bounds]
    if args.out:
        _check_figure_path(_stem(Path(args.out)))  # a name clash is caught before anything is read or drawn
    reports = [read_report(s) for s in sources]
    if args.labels is not None and len(args.labels) != len(sources):
        raise UserError(f"--labels got {len(args.labels)} names for {len(sources)} runs; give one per --bounds DIR")

    from scilt_theory.plotting import plot_overlay, run_labels

    try:
        labels = run_labels(reports, args.labels, fallbacks=[_run_name(s) for s in sources])
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.out:
        out = _stem(Path(args.out))
    else:
        first = sources[0] if sources[0].is_dir() else sources[0].parent
        out = first.resolve().parent / "overlay"
    _check_figure_path(out)
    from scilt_theory.checkpoint import check_output_dir

    check_output_dir(out.parent)
    try:
        written = plot_overlay(reports, out, labels=labels)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def _stem(out: Path) -> Path:
    return out.with_suffix("") if out.suffix.lower() in SUFFIXES else out


def _check_figure_path(out: Path) -> None:
    """Refuse a figure stem that is a folder, or whose .png / .pdf is one."""
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file path without extension")
    for suffix in SUFFIXES:
        if out.with_name(out.name + suffix).is_dir():
            raise UserError(f"--out {out}: {out.name + suffix} is a folder, so the figure cannot be written there; "
                            f"choose another --out")


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 after one "error: ..." line on stderr)."""
    try:
        return run_main(_plot, argv)
    except SystemExit as exc:  # argparse printed its one line already; return the status rather than exit
        return exc.code if isinstance(exc.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
