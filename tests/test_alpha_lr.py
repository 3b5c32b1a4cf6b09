"""The fusion logit's own learning rate (TrainConfig.alpha_lr) and the per-step α trajectory in the metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch
from interrupt import train_until_saved

from scilt_theory.checkpoint import load_run
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig, build_model
from scilt_theory.training import (
    ALPHA_GROUP,
    TrainConfig,
    alpha_trajectory,
    make_optimizer,
    make_scheduler,
    param_groups,
    set_up,
    train,
)

D = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=4, image_size=16, num_classes=3)
M = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")


def _config(out, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.01, "alpha_lr": 0.5,
                          "warmup_epochs": 0.5, "out": str(out), "quiet": True, "save_every": 2, **kw})


def test_the_fusion_logit_has_its_own_group_without_weight_decay_on_the_same_schedule():
    model = build_model(M)
    config = TrainConfig(lr=0.01, alpha_lr=0.5, weight_decay=1e-3, epochs=2, warmup_epochs=1)
    groups = param_groups(model, config)
    assert [g["name"] for g in groups] == ["weights", ALPHA_GROUP]
    assert groups[1]["params"] == [model.fusion.logit] and groups[1]["weight_decay"] == 0.0
    assert all(p is not model.fusion.logit for p in groups[0]["params"])
    assert sum(p.numel() for g in groups for p in g["params"]) == model.num_trainable_parameters()
    optimizer = make_optimizer(groups, config, torch.device("cpu"))
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.5]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-3, 0.0]
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=5)
    for _ in range(7):  # warm-up, then cosine: the same factor for both groups
        optimizer.step()
        scheduler.step()
        weights, alpha = scheduler.get_last_lr()
        assert alpha == pytest.approx(50 * weights)
    # None means the base lr; fixed fusion has no logit and so no second group
    assert param_groups(model, TrainConfig(lr=0.02))[1]["lr"] == 0.02
    fixed = build_model(ModelConfig(**{**M.__dict__, "fusion": "fixed"}))
    assert [g["name"] for g in param_groups(fixed, config)] == ["weights"]


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_a_bad_alpha_lr_is_refused_in_one_sentence(bad):
    with pytest.raises(ValueError, match=r"^alpha_lr must be .*or a number > 0, got"):
        TrainConfig(alpha_lr=bad)


def _interrupted(out, at_step: int, monkeypatch, **kw):
    train_until_saved(lambda: train(D, M, _config(out, **kw)), at_step, monkeypatch)
    return out / "run.pt"


def test_alpha_moves_with_its_own_lr_and_its_trajectory_is_recorded(tmp_path):
    slow = train(D, M, _config(tmp_path / "slow", alpha_lr=None, save_every=0))
    fast = train(D, M, _config(tmp_path / "fast", save_every=0))
    moved = {name: abs(alpha_trajectory(r.history)["end"] - 0.5) for name, r in (("slow", slow), ("fast", fast))}
    assert moved["fast"] > 10 * moved["slow"], moved
    trajectory = alpha_trajectory(fast.history)
    steps = 2 * 6  # 6 optimiser steps per epoch
    assert trajectory["start"] == 0.5 and trajectory["every"] == 1
    assert [len(h["alpha_steps"]) for h in fast.history] == [6, 6]
    assert len(trajectory["values"]) == steps and trajectory["end"] == trajectory["values"][-1]
    assert trajectory["min"] == min([0.5, *trajectory["values"]])
    assert trajectory["max"] == max([0.5, *trajectory["values"]])
    # the per-epoch α of the history is the step trajectory at the end of each epoch, the next epoch starts there
    assert [h["alpha"] for h in fast.history] == [trajectory["values"][5], trajectory["values"][11]]
    assert fast.history[1]["alpha_start"] == fast.history[0]["alpha"]
    assert trajectory["end"] == pytest.approx(float(torch.sigmoid(fast.model.fusion.logit.detach())))
    text = (tmp_path / "fast" / "metrics.md").read_text()
    assert f"0.5000 → {trajectory['end']:.4f}" in text
    assert alpha_trajectory(json.loads((tmp_path / "fast" / "metrics.json").read_text())["history"]) == trajectory


def test_long_runs_keep_every_kth_alpha_and_the_exact_range(monkeypatch, tmp_path):
    import scilt_theory.training as training

    monkeypatch.setattr(training, "ALPHA_TRAJECTORY_POINTS", 5)  # 12 steps -> every 3rd step
    run = train(D, M, _config(tmp_path / "k", save_every=0))
    trajectory = alpha_trajectory(run.history)
    assert trajectory["every"] == 3 and len(trajectory["values"]) == 4
    assert [len(h["alpha_steps"]) for h in run.history] == [2, 2]
    assert trajectory["values"][-1] == trajectory["end"]  # step 12 is a multiple of 3
    assert trajectory["min"] <= min(trajectory["values"]) and trajectory["max"] >= max(trajectory["values"])


@pytest.mark.parametrize("at_step", [4, 8])  # mid-epoch 1 and mid-epoch 2
def test_resume_restores_both_parameter_groups_exactly(tmp_path, monkeypatch, at_step):
    reference = train(D, M, _config(tmp_path / "ref"))
    ckpt = _interrupted(tmp_path / "cut", at_step, monkeypatch)
    saved = load_run(ckpt, allow_unfinished=True)["train_state"]["optimizer"]
    run = set_up(D, M, _config(tmp_path / "cut"), resume=ckpt)
    restored = run.optimizer.state_dict()
    assert restored["param_groups"] == saved["param_groups"]
    assert [g["name"] for g in restored["param_groups"]] == ["weights", ALPHA_GROUP]
    assert restored["state"].keys() == saved["state"].keys()
    for index, state in saved["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][index][key]), torch.as_tensor(value)), (index, key)
    resumed = train(D, M, _config(tmp_path / "cut"), resume=ckpt)
    for key, value in reference.model.trainable_state_dict().items():
        assert torch.equal(value, resumed.model.trainable_state_dict()[key]), key
    assert alpha_trajectory(reference.history) == alpha_trajectory(resumed.history)
    assert [h["alpha"] for h in reference.history] == [h["alpha"] for h in resumed.history]
