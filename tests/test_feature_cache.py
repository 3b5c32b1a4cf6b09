"""Frozen backbone (adapter none): training on cached CLS features of all 8 augmented views is the same run, bit for
bit, as training with the features computed at every step (TrainConfig.feature_cache false), resume included.

Why the equality is real and not luck: in both paths an image's features come from one backbone pass over exactly
that image's views (scilt_theory/features.py ``view_features``), never from a pass whose batch holds other images,
and the view each step uses is drawn by the same generator call as ``augment_batch``'s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from interrupt import train_until_saved

from scilt_theory.checkpoint import load_run
from scilt_theory.data import DataConfig
from scilt_theory.features import (
    NUM_VIEWS,
    apply_view,
    backbone_is_frozen,
    batch_view_features,
    extract_view_features,
    view_features,
)
from scilt_theory.methods import MethodConfig
from scilt_theory.models import ModelConfig, build_model
from scilt_theory.training import TrainConfig, augment_batch, augment_views, train

ROOT = Path(__file__).resolve().parents[1]
# 3 classes with 48/24/12 images, batch 8 -> 11 optimiser steps per epoch
D = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=48, test_per_class=4, image_size=16, num_classes=3)
M = ModelConfig(num_classes=3, arch="test_vit", img_size=16, patch_size=4, depth=2, adapter="none")
STEPS_PER_EPOCH = 11


def _config(out, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "alpha_lr": 0.5,
                          "warmup_epochs": 0.5, "out": str(out), "quiet": True, **kw})


def _method(name: str) -> MethodConfig:
    return MethodConfig(name=name, h2t=replace(MethodConfig().h2t, epochs=1, batch_size=8))


def _same_numbers(metrics: dict) -> dict:
    """Everything but wall-clock times and the cache's own description."""
    out = {k: v for k, v in metrics.items() if k not in ("train_seconds", "history", "feature_cache", "h2t_history")}
    assert "seconds" not in str(metrics.get("feature_cache"))  # no wall-clock time outside the excluded keys
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    out["h2t_history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics.get("h2t_history", [])]
    return out


def _assert_same_run(a, b) -> None:
    sa, sb = a.model.trainable_state_dict(), b.model.trainable_state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert _same_numbers(a.metrics) == _same_numbers(b.metrics)


def test_the_views_are_those_augment_batch_draws():
    images = torch.rand(13, 3, 8, 8)
    augmented = augment_batch(images, torch.Generator().manual_seed(5))
    views = augment_views(13, torch.Generator().manual_seed(5))
    assert torch.equal(augmented, torch.stack([apply_view(images[i], int(v)) for i, v in enumerate(views)]))
    assert len(set(views.tolist())) > 3
    # the 8 views are 8 different orientations (the dihedral group of the square)
    x = torch.arange(16.0).view(1, 4, 4)
    assert len({tuple(apply_view(x, k).flatten().tolist()) for k in range(NUM_VIEWS)}) == NUM_VIEWS


def test_cached_view_features_are_the_per_step_features_and_the_image_path_up_to_rounding():
    torch.manual_seed(0)
    model = build_model(M)
    assert backbone_is_frozen(model)
    images = torch.rand(6, 3, 16, 16)
    cache = extract_view_features(model, images, NUM_VIEWS, batch_size=4, progress=False)
    assert cache.phi_penult.shape == (6, NUM_VIEWS, model.feature_dim)
    views = torch.tensor([0, 3, 7, 5, 1, 4])
    order = torch.tensor([4, 0, 5, 2, 1, 3])  # a training batch in another order than the cache
    got = batch_view_features(model, images[order], views, NUM_VIEWS)
    want = cache.select(order, views)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    one = view_features(model, images[2], NUM_VIEWS)
    assert torch.equal(one[0], cache.phi_penult[2]) and torch.equal(one[1], cache.phi_final[2])
    # the same numbers the image path computes, up to floating point of another batch composition
    augmented = torch.stack([apply_view(images[i], int(v)) for i, v in zip(order, views)])
    with torch.no_grad():
        phi1, phi2 = model.features(augmented)
        direct = model.output_from_features(phi1, phi2).logits
        cached = model.output_from_features(*want).logits
    torch.testing.assert_close(cached, direct, rtol=1e-5, atol=1e-5)


def test_a_trainable_or_stochastic_backbone_is_not_frozen(tmp_path):
    assert not backbone_is_frozen(build_model(replace(M, adapter="full")))
    assert not backbone_is_frozen(build_model(replace(M, adapter="lora")))
    assert not backbone_is_frozen(build_model(replace(M, drop_path_rate=0.1)))
    small = DataConfig(**{**D.__dict__, "max_per_class": 16})
    full = train(small, replace(M, adapter="full"), _config(tmp_path / "full", epochs=1))
    assert full.metrics["feature_cache"] is None


@pytest.mark.parametrize("method,augment", [("scilt", True), ("scilt", False), ("pi_h2t", True)])
def test_cache_on_and_off_train_the_same_run_bit_for_bit(tmp_path, method, augment):
    on = train(D, M, _config(tmp_path / "on", augment=augment), method=_method(method))
    off = train(D, M, _config(tmp_path / "off", augment=augment, feature_cache=False), method=_method(method))
    assert on.metrics["feature_cache"]["views"] == (NUM_VIEWS if augment else 1)
    assert on.metrics["feature_cache"]["images"] == len(on.data.train_labels)
    assert off.metrics["feature_cache"] is None
    _assert_same_run(on, off)
    assert [len(h["alpha_steps"]) for h in on.history] == [STEPS_PER_EPOCH] * 2
    assert on.history[-1]["alpha"] != 0.5  # the heads and α did train
    a = json.loads((tmp_path / "on" / "metrics.json").read_text())
    b = json.loads((tmp_path / "off" / "metrics.json").read_text())
    assert _same_numbers(a) == _same_numbers(b)


@pytest.mark.parametrize("at_step", [4, STEPS_PER_EPOCH + 3])  # mid-epoch 1, mid-epoch 2
def test_a_cached_run_resumes_bit_identically(tmp_path, monkeypatch, at_step):
    reference = train(D, M, _config(tmp_path / "ref", save_every=1))
    train_until_saved(lambda: train(D, M, _config(tmp_path / "cut", save_every=1)), at_step, monkeypatch)
    ckpt = tmp_path / "cut" / "run.pt"
    assert load_run(ckpt, allow_unfinished=True)["train_state"]["progress"]["global_step"] == at_step
    resumed = train(D, M, _config(tmp_path / "cut", save_every=1), resume=ckpt)  # the cache is rebuilt
    _assert_same_run(reference, resumed)
    assert resumed.metrics["feature_cache"] is not None


def test_a_random_frozen_backbone_is_saved_and_restores_exactly(tmp_path):
    from scilt_theory.restore import restore_run
    from scilt_theory.training import predict

    run = train(D, M, _config(tmp_path / "r", epochs=1))
    _, model, data = restore_run(run.run_path)
    before = predict(run.model.cpu(), data.test_images, 64, torch.device("cpu"))
    assert torch.equal(before, predict(model, data.test_images, 64, torch.device("cpu")))


# ---- torchrun: two gloo processes on cached features against one process -----------------------------------
TRAIN_ARGS = ["--dataset", "synthetic-lt", "--num-classes", "3", "--max-per-class", "48", "--imbalance", "4",
              "--test-per-class", "4", "--img-size", "16", "--arch", "test_vit", "--patch-size", "4", "--depth", "2",
              "--adapter", "none", "--epochs", "2", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05",
              "--alpha-lr", "0.5", "--warmup-epochs", "0.5", "--quiet"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_cached_features_train_the_one_process_heads(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "experiments.train", *TRAIN_ARGS, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "experiments.train", *TRAIN_ARGS, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = load_run(tmp_path / "one" / "run.pt"), load_run(tmp_path / "two" / "run.pt")
    assert a["metrics"]["feature_cache"]["images"] == b["metrics"]["feature_cache"]["images"] == 84
    for key in a["model_state"]:  # same features on every rank; DDP sums the heads' gradients in another order
        torch.testing.assert_close(a["model_state"][key], b["model_state"][key], rtol=1e-4, atol=1e-5)
    assert a["metrics"]["balanced_accuracy"] == b["metrics"]["balanced_accuracy"]
    assert [h["train_acc"] for h in a["metrics"]["history"]] == [h["train_acc"] for h in b["metrics"]["history"]]
