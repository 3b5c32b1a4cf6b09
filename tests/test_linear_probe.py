"""The linear-probe reference (scilt_theory/linear_probe.py): the run's frozen backbone, split and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scilt_theory.data import DataConfig
from scilt_theory.linear_probe import (
    FEATURE_VIEWS,
    ProbeSettings,
    choose_c,
    fit_predict,
    probe_features,
    run_linear_probe,
)
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, set_up

D = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=40, test_per_class=6, image_size=16, num_classes=3)
M = ModelConfig(num_classes=3, arch="test_vit", img_size=16, patch_size=4, depth=2, adapter="lora")


def test_the_probe_reads_the_runs_split_and_initial_backbone(tmp_path):
    config = TrainConfig(holdout_fraction=0.25, seed=3, quiet=True, out=str(tmp_path / "run"))
    inputs = probe_features(D, M, config)
    run = set_up(D, M, config)  # what training starts from: same split, same random backbone before any step
    assert torch.equal(inputs.split.holdout_index, run.split.holdout_index)
    assert torch.equal(inputs.split.labels, run.split.labels) and len(run.split.holdout_index) > 0
    assert inputs.model_config.adapter == "none" and inputs.model_config.num_classes == 3
    frozen = inputs.model.backbone.state_dict()
    for name, value in run.model.backbone.state_dict().items():
        if "lora_" not in name:  # LoRA's A/B matrices exist in the run only
            key = name.replace("base_layer.", "")
            assert torch.equal(frozen[key], value), name
    x_fit, x_test = inputs.views["both"]
    d = inputs.model.feature_dim
    assert x_fit.shape == (len(run.split.labels), 2 * d) and x_test.shape == (len(inputs.data.test_labels), 2 * d)
    np.testing.assert_allclose(np.linalg.norm(inputs.views["final"][0], axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(x_fit[:, :d], inputs.views["penultimate"][0])


def test_run_linear_probe_reports_cv_and_c1_with_the_projects_metrics():
    result = run_linear_probe(D, M, TrainConfig(quiet=True), settings=ProbeSettings(c_grid=(0.1, 10.0)))
    assert list(result["views"]) == list(FEATURE_VIEWS)
    for entry in result["views"].values():
        cv, c1 = entry["cv"], entry["c1"]
        assert cv["C"] in (0.1, 10.0) and cv["folds"] == 5 and set(cv["scores"]) == {"0.1", "10.0"}
        assert c1["C"] == 1.0
        for metrics in (cv["metrics"], c1["metrics"]):
            assert 0 <= metrics["balanced_accuracy"] <= 1 and set(metrics["group_accuracy"]) >= {"many", "few"}
            assert metrics["num_test"] == 18 and "worst_class" in metrics
    assert result["n_fit"] == 40 + 20 + 10


def test_choose_c_picks_the_best_fold_score_and_gives_up_without_two_images_per_class():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(0.5, 1, (30, 4))])
    y = np.repeat([0, 1], 30)
    chosen = choose_c(x, y, seed=0, settings=ProbeSettings(c_grid=(0.001, 1.0, 100.0)))
    best = max(chosen["scores"].values())
    assert chosen["C"] == min(float(c) for c, v in chosen["scores"].items() if v == best)  # smallest C on ties
    lonely = choose_c(x[:31], np.r_[np.zeros(30, int), 1], seed=0)
    assert lonely["C"] == 1.0 and lonely["folds"] == 0 and "single fit image" in lonely["note"]
    predictions, info = fit_predict(x, y, x, 1.0)
    assert predictions.shape == (60,) and info["converged"]


@pytest.mark.parametrize("adapter", ["full", "none"])
def test_the_adapter_of_the_run_does_not_change_the_probe(adapter):
    a = probe_features(D, M, TrainConfig(quiet=True))
    b = probe_features(D, ModelConfig(**{**M.__dict__, "adapter": adapter}), TrainConfig(quiet=True))
    for view in FEATURE_VIEWS:
        np.testing.assert_array_equal(a.views[view][0], b.views[view][0])
