"""`make demo`: train SciLT on the embedded default data set, then compute and plot its bounds.

The settings are CPU-sized (2 cores, a few minutes): a 6-block ViT-Tiny at 32 px / patch 4, trained in full
from random initialisation (no pretrained weights can be downloaded here; adapters on a frozen random backbone
learn little), on scitiles-lt with imbalance factor 100.
"""

from __future__ import annotations

import sys
import time

from experiments import bounds as bounds_cli
from experiments import train as train_cli
from experiments._cli import run_main
from experiments.recipes import CPU_RECIPE

OUT = "runs/demo"
TRAIN_ARGS = ["--dataset", "scitiles-lt", "--imbalance", "100", *CPU_RECIPE, "--seed", "0", "--out", OUT]


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    print(f"[demo] training: python -m experiments.train {' '.join(TRAIN_ARGS)}", flush=True)
    code = train_cli.main(TRAIN_ARGS)
    if code:
        return code
    trained = time.perf_counter()
    print(f"[demo] bounds: python -m experiments.bounds --ckpt {OUT}/run.pt", flush=True)
    code = bounds_cli.main(["--ckpt", f"{OUT}/run.pt"])
    if code:
        return code
    done = time.perf_counter()
    print(f"[demo] done in {done - started:.0f} s (training {trained - started:.0f} s, bounds {done - trained:.0f} s)")
    print(f"[demo] metrics: {OUT}/metrics.md   bounds report: {OUT}/bounds/report.md   "
          f"plots: {OUT}/bounds/*.png (and .pdf)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
