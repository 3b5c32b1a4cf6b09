"""Kill-and-resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run.

The run is a real ``python -m experiments.train`` subprocess; the test polls for a periodic checkpoint inside the
second epoch (no fixed sleeps) and kills it there: past the first epoch, a wrong data order or RNG state on
resume would show (in epoch 1 a freshly seeded loader happens to be right). On a machine fast enough to finish
before the kill lands, it tries again with more epochs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from interrupt import train_until_saved

from scilt_theory.checkpoint import CheckpointError, load_run
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
# 3 classes with 48/24/12 images, batch 8 -> 11 optimiser steps per epoch
TINY = ["--dataset", "synthetic-lt", "--num-classes", "3", "--imbalance", "4", "--max-per-class", "48",
        "--test-per-class", "4", "--img-size", "16", "--patch-size", "4", "--depth", "2", "--adapter", "full",
        "--batch-size", "8", "--optimizer", "adamw", "--lr", "0.002", "--warmup-epochs", "0.5", "--quiet"]
STEPS_PER_EPOCH = 11
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.train", *TINY, *args]


def _progress(path: Path) -> tuple[bool, int] | None:
    """(finished, optimiser steps done) of the run.pt at ``path``, or None while there is none."""
    if not path.exists():
        return None
    try:
        record = load_run(path, allow_unfinished=True)
    except CheckpointError:  # cannot happen with atomic writes; tolerate a racing reader anyway
        return None
    if record.get("finished", True):
        return True, -1
    return False, record["train_state"]["progress"]["global_step"]


def _kill_mid_run(out: Path, epochs: int, timeout: float = 120.0) -> int | None:
    """Start a run, SIGKILL it once a checkpoint inside epoch 2 exists; the optimiser step it stopped at,
    or None when the run finished before the kill."""
    proc = subprocess.Popen(_train_cmd("--epochs", str(epochs), "--save-every", "1", "--out", str(out)),
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            state = _progress(out / "run.pt")
            if state is not None and state[0]:
                return None
            if state is not None and state[1] > STEPS_PER_EPOCH + 1:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return _progress(out / "run.pt")[1]
            if proc.poll() is not None:
                raise AssertionError(f"training exited early: {proc.stderr.read().decode()}")
            time.sleep(0.01)
        raise AssertionError("no periodic checkpoint appeared in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    for attempt, epochs in enumerate((3, 8, 20)):
        killed = tmp_path / f"killed{attempt}"
        stopped_at = _kill_mid_run(killed, epochs)
        if stopped_at is not None:
            break
    else:
        pytest.fail("the run finished before it could be killed, three times")
    assert STEPS_PER_EPOCH + 1 < stopped_at < epochs * STEPS_PER_EPOCH
    resumed = subprocess.run([sys.executable, "-m", "experiments.train", "--resume", str(killed / "run.pt")],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed / 'run.pt'}" in resumed.stdout
    reference = tmp_path / "reference"
    full = subprocess.run(_train_cmd("--epochs", str(epochs), "--out", str(reference)), cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr

    a, b = load_run(reference / "run.pt"), load_run(killed / "run.pt")
    assert a["finished"] and b["finished"] and "train_state" not in b
    assert a["model_state"].keys() == b["model_state"].keys()
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key

    def same(metrics: dict) -> dict:  # everything but wall-clock times
        out = {k: v for k, v in metrics.items() if k not in ("train_seconds", "history")}
        out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
        return out

    assert same(a["metrics"]) == same(b["metrics"])
    assert len(b["metrics"]["history"]) == epochs


D = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=4, image_size=16, num_classes=3)
M = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")


def _config(out: Path, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.01, "warmup_epochs": 0.5,
                          "out": str(out), "quiet": True, "save_every": 2, **kw})


def _interrupted(out: Path, at_step: int, monkeypatch) -> Path:
    """Train and stop right after the periodic save of ``at_step`` (in-process stand-in for a kill)."""
    train_until_saved(lambda: train(D, M, _config(out)), at_step, monkeypatch)
    return out / "run.pt"


@pytest.mark.parametrize("at_step", [2, 6, 10])  # mid-epoch 1, end of epoch 1, mid-epoch 2 (6 steps per epoch)
def test_in_process_resume_matches_sgd_with_momentum(tmp_path, monkeypatch, at_step):
    reference = train(D, M, _config(tmp_path / "ref"))
    ckpt = _interrupted(tmp_path / "cut", at_step, monkeypatch)
    with pytest.raises(CheckpointError, match="unfinished"):
        load_run(ckpt)  # what every other loader (bounds, restore) sees
    resumed = train(D, M, _config(tmp_path / "cut"), resume=ckpt)
    for key, value in reference.model.trainable_state_dict().items():
        assert torch.equal(value, resumed.model.trainable_state_dict()[key]), key
    assert reference.metrics["balanced_accuracy"] == resumed.metrics["balanced_accuracy"]
    assert [h["loss"] for h in reference.history] == [h["loss"] for h in resumed.history]


def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch):
    ckpt = _interrupted(tmp_path / "cut", 3, monkeypatch)
    with pytest.raises(CheckpointError, match=r"other than its own: lr 0\.02 \(checkpoint: 0\.01\)"):
        train(D, M, _config(tmp_path / "cut", lr=0.02), resume=ckpt)
    # output path, quiet and save_every may change
    result = train(D, M, _config(tmp_path / "elsewhere", save_every=0, quiet=False), resume=ckpt, log=lambda _: None)
    assert result.run_path == tmp_path / "elsewhere" / "run.pt"
    with pytest.raises(CheckpointError, match="finished run"):
        train(D, M, _config(tmp_path / "again"), resume=result.run_path)
