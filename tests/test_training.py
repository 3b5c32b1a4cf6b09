"""End-to-end training on tiny settings: learns, saves a weights-only run.pt that restores exactly."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scilt_theory.checkpoint import load_run
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.restore import restore_run
from scilt_theory.training import TrainConfig, holdout_split, predict, train

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=160, test_per_class=20, image_size=16,
                       num_classes=4)
TINY_MODEL = ModelConfig(num_classes=4, img_size=16, patch_size=4, depth=2, adapter="full")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=0.0, warmup_epochs=0,
                         out=str(out), quiet=True, holdout_fraction=0.2)
    return train(TINY_DATA, TINY_MODEL, config)


def test_one_epoch_improves_over_chance(tiny_run):
    assert tiny_run.metrics["balanced_accuracy"] > 0.25 + 0.15, tiny_run.metrics["per_class_accuracy"]
    assert (Path(tiny_run.run_path).parent / "metrics.json").exists()
    assert (Path(tiny_run.run_path).parent / "metrics.md").exists()


def test_run_pt_round_trip_gives_identical_predictions(tiny_run):
    record, model, data = restore_run(tiny_run.run_path)
    assert torch.equal(data.train_labels, tiny_run.data.train_labels)
    before = predict(tiny_run.model.cpu(), data.test_images, 64, torch.device("cpu"))
    after = predict(model, data.test_images, 64, torch.device("cpu"))
    assert torch.equal(before, after)
    assert record.metrics["balanced_accuracy"] == tiny_run.metrics["balanced_accuracy"]
    assert record.versions["torch"] == torch.__version__


def test_holdout_is_stratified_disjoint_and_recorded(tiny_run):
    record = load_run(tiny_run.run_path)
    held = torch.tensor(record["holdout_indices"], dtype=torch.long)
    labels = tiny_run.data.train_labels
    fit, held_again = holdout_split(labels, 0.2, 0)
    assert torch.equal(held, held_again)
    assert set(fit.tolist()).isdisjoint(held.tolist())
    assert len(fit) + len(held) == len(labels)
    counts = torch.bincount(labels, minlength=4)
    assert torch.equal(torch.bincount(labels[held], minlength=4), torch.clamp((0.2 * counts).floor().long(),
                                                                              max=counts - 1))
    assert record["fit_counts"] == torch.bincount(labels[fit], minlength=4).tolist()


def test_bad_training_config_values_are_refused():
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"optimizer": "lbfgs"}, {"holdout_fraction": 1.0},
                {"device": "tpu"}, {"momentum": 1.5}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_train_help_documents_every_option():
    from experiments.train import build_parser

    help_text = build_parser().format_help()
    for cls, skip, rename in ((DataConfig, {"image_size"}, {"name": "dataset", "seed": "split_seed"}),
                              (ModelConfig, {"num_classes"}, {}),
                              (TrainConfig, set(), {})):
        for f in dataclasses.fields(cls):
            if f.name not in skip:
                assert "--" + rename.get(f.name, f.name).replace("_", "-") in help_text, f.name


@pytest.mark.parametrize("args,fragment", [
    (["--epochs", "0"], "epochs"),
    (["--dataset", "nope"], "nope"),
    (["--adapter", "bogus"], "adapter"),
    (["--lr", "nan"], "finite"),
])
def test_bad_cli_value_gives_one_clear_line(args, fragment):
    proc = subprocess.run([sys.executable, "-m", "experiments.train", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0]
