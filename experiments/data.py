"""Inspect a long-tailed data set: ``python -m experiments.data --dataset NAME [--data-root PATH] [options]``.

Builds the split exactly as ``experiments.train`` would (same options, same seed) and prints and writes
OUT/data_summary.json and OUT/data_summary.md: per-class training / test counts (and the pools they were drawn
from), the Many/Medium/Few groups, the imbalance factor n_max / n_min and where the data came from. A few images
of each split are decoded (``--decode``) so that unreadable files show up here rather than mid-training.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from experiments._cli import OneLineParser, UserError, add_dataclass_options, dataclass_from_args, run_main


def build_parser() -> argparse.ArgumentParser:
    from scilt_theory.data import DATASETS, DataConfig

    parser = OneLineParser(prog="python -m experiments.data", description=__doc__.split("\n\n")[0] +
                           " Data sets: " + "; ".join(f"{name}: {DATASETS[name].summary}" if DATASETS[name].summary
                                                      else name for name in sorted(DATASETS)) + ".")
    add_dataclass_options(parser, DataConfig, title="data", rename={"name": "dataset", "seed": "split_seed"})
    parser.add_argument("--out", default=None, help="output folder (default: runs/data/<dataset>)")
    parser.add_argument("--decode", type=int, default=4,
                        help="images of each split decoded as a check that the files read (default 4; 0 = none)")
    parser.add_argument("--quiet", action="store_true", help="write the files, print only their paths")
    return parser


def describe(data) -> dict[str, Any]:
    """``data.summary()`` plus the provenance a reader recorded (without per-image index arrays)."""
    from scilt_theory.codec import to_jsonable

    summary = data.summary()
    skip = {"train_index", "test_index", "train_crops", "test_crops", "train_blocks", "test_blocks", "block_origins",
            "block_is_test"}
    summary["provenance"] = {k: to_jsonable(v) for k, v in data.provenance.items() if k not in skip}
    return summary


def markdown(summary: dict[str, Any]) -> str:
    from scilt_theory.report import md

    prov = summary["provenance"]
    pool = prov.get("pool_counts")
    lines = [f"# {summary['name']}: {summary['num_classes']} classes, {summary['num_train']} training / "
             f"{summary['num_test']} test images", "",
             f"- imbalance factor n_max / n_min: **{summary['imbalance_factor']:.4g}** "
             f"({summary['train_counts'][0]} / {summary['train_counts'][-1]})",
             f"- groups (Many > {summary['config']['many_threshold']}, Few < {summary['config']['few_threshold']}): "
             + ", ".join(f"{g} {n}" for g, n in summary["group_sizes"].items()),
             f"- split seed {summary['seed']}, image shape {summary['image_shape']}"]
    for note in prov.get("notes") or []:
        lines.append(f"- note: {md(note)}")
    for key in ("profile", "test_split", "official_test_split", "source_layout", "source_file", "source_root",
                "source_test_file", "source_test_root", "label_rule", "rows", "multi_label_rows_dropped",
                "unlisted_rows_dropped", "dropped_classes", "excluded_classes", "source_profile", "block_size",
                "blocks_per_class", "test_same_distribution", "test_distribution_note"):
        if prov.get(key) not in (None, [], ""):
            lines.append(f"- {key.replace('_', ' ')}: {md(prov[key])}")
    lines += ["", "| class | name | group | train | test |" + (" pool |" if pool else ""),
              "|---:|---|---|---:|---:|" + ("---:|" if pool else "")]
    for c, name in enumerate(summary["class_names"]):
        row = (f"| {c} | {md(name)} | {summary['groups'][c]} | {summary['train_counts'][c]} | "
               f"{summary['test_counts'][c]} |")
        lines.append(row + (f" {pool[c]} |" if pool else ""))
    if pool:
        lines += ["", "pool = the class's images outside the official test split (before any test hold-out)."]
    return "\n".join(lines) + "\n"


OUTPUT_FILES = ("data_summary.json", "data_summary.md")


def _owned(name: str, is_dir: bool) -> bool:
    return not is_dir and (name in OUTPUT_FILES or (name.startswith(".") and name.endswith(".tmp")))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from experiments.train import _opt_in_profile
    from scilt_theory.checkpoint import check_replaceable, fresh_output_folder
    from scilt_theory.data import DATASETS, DataConfig, build_dataset

    _opt_in_profile(args, argv)  # --imbalance on a real data set asks for the long-tail subsample
    config = dataclass_from_args(DataConfig, args)
    if config.name not in DATASETS:
        raise UserError(f"unknown data set {config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    if args.decode < 0:
        raise UserError(f"--decode must be a non-negative number of images, got {args.decode}")
    from experiments.train import check_data_memory

    check_data_memory(config)  # an embedded data set is made in memory
    out = Path(args.out) if args.out else Path("runs") / "data" / config.name
    try:
        check_replaceable(out, _owned, "a data summary")  # before reading any data
    except ValueError as exc:
        raise UserError(str(exc)) from None
    data = build_dataset(config)
    for images in (data.train_images, data.test_images):
        n = min(args.decode, images.shape[0])
        if n:
            batch = images[0:n]
            if float(batch.min()) < 0 or float(batch.max()) > 1:
                raise UserError(f"decoded images of {config.name} leave [0, 1]")
    summary = describe(data)
    text = markdown(summary)
    with fresh_output_folder(out, _owned, "a data summary") as tmp:  # both files of one run, or the old ones
        (tmp / "data_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (tmp / "data_summary.md").write_text(text, encoding="utf-8")
    if not args.quiet:
        print(text, end="")
    else:
        for note in data.provenance.get("notes") or []:
            print(f"note: {note}")
    print(f"wrote {out / 'data_summary.json'} and {out / 'data_summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
