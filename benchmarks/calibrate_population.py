"""Calibrate the law of ``scitiles-pop`` (crop side, photons, read noise) on the **validation** draw.

For each setting: the training split (long-tail counts, imbalance 100, minus the demo's 30 % hold-out) and the
validation draw go through the frozen DINOv2-S/14 at 98 px once; class-balanced logistic regression (C = 1) on the
L2-normalised penultimate and final CLS features is scored on the validation draw (balanced accuracy, Few-group and
worst-class accuracy). The test split is never drawn here. Prints one Markdown row per setting and appends it as
JSON to ``--out`` (resumable: settings already there are skipped).

    python -m benchmarks.calibrate_population --settings 48:20:0.05 32:20:0.05 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _features(model, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    from scilt_theory.features import extract_features

    feats = extract_features(model, images, torch.zeros(len(images), dtype=torch.int64), batch_size=128,
                             progress=False, dtype=torch.float32)
    return F.normalize(feats.phi_penult, dim=1).numpy(), F.normalize(feats.phi_final, dim=1).numpy()


def calibrate(crop: int, photons: float, read_noise: float, seed: int, weights: str) -> dict:
    from scilt_theory.data import DataConfig, build_dataset, holdout_split
    from scilt_theory.linear_probe import fit_predict
    from scilt_theory.metrics import evaluate_predictions
    from scilt_theory.models import ModelConfig, build_model

    started = time.perf_counter()
    config = DataConfig(name="scitiles-pop", image_size=98, crop_size=crop, photons=photons, read_noise=read_noise,
                        seed=seed, test_per_class=1)  # the test split is not looked at (one image per class)
    data = build_dataset(config)
    fit, _ = holdout_split(data.train_labels, 0.3, seed)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(num_classes=data.num_classes, arch="vit_small_patch14_dinov2", img_size=98,
                                    patch_size=14, adapter="none", weights=weights)).eval()
    val_x, val_y = data.extra_splits["validation"]
    x_fit, x_val = _features(model, data.train_images[fit]), _features(model, val_x)
    y_fit = data.train_labels[fit].numpy()
    row = {"crop": crop, "photons": photons, "read_noise": read_noise, "seed": seed}
    for view, i in (("penultimate", 0), ("final", 1)):
        pred, _ = fit_predict(x_fit[i], y_fit, x_val[i], 1.0)
        m = evaluate_predictions(val_y.numpy(), pred, num_classes=data.num_classes,
                                 train_counts=data.class_counts.tolist(), class_names=data.class_names)
        row[view] = {"balanced": m["balanced_accuracy"], "few": m["group_accuracy"]["few"],
                     "worst": min(a for a in m["per_class_accuracy"] if a is not None)}
    row["seconds"] = time.perf_counter() - started
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", nargs="+", required=True, help="crop:photons:read_noise, e.g. 48:20:0.05")
    p.add_argument("--seeds", default="0")
    p.add_argument("--weights", default=None, help="DINOv2-S/14 safetensors (default: experiments.weights)")
    p.add_argument("--out", default="runs/calibration.jsonl")
    args = p.parse_args(argv)
    if args.weights is None:
        from scilt_theory.pretrained import pretrained_weights

        args.weights = str(pretrained_weights())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for setting in args.settings:
        crop, photons, noise = setting.split(":")
        for seed in [int(s) for s in args.seeds.split(",")]:
            key = (int(crop), float(photons), float(noise), seed)
            if any((r["crop"], r["photons"], r["read_noise"], r["seed"]) == key for r in done):
                continue
            row = calibrate(*key, weights=args.weights)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            pen, fin = row["penultimate"], row["final"]
            print(f"| {crop} | {photons} | {noise} | {seed} | {pen['balanced']:.3f} | {pen['few']:.3f} | "
                  f"{pen['worst']:.3f} | {fin['balanced']:.3f} | {fin['few']:.3f} | {fin['worst']:.3f} | "
                  f"{row['seconds']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


