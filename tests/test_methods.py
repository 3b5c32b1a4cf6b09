"""The method registry (scilt_theory/methods.py): every method trains on tiny data with exactly its intended
parameters receiving gradients, its hypothesis-class radii are right, and its settings survive run.pt."""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from interrupt import train_until_saved

from scilt_theory import distributed
from scilt_theory.data import DataConfig, build_dataset
from scilt_theory.distributed import DistContext
from scilt_theory.methods import METHODS, MethodConfig, Objective, get_method, supervised_loss
from scilt_theory.models import ModelConfig, build_model
from scilt_theory.training import TrainConfig, retrain_heads_h2t, train

DEPTH = 3
TINY = ModelConfig(num_classes=4, img_size=16, patch_size=4, depth=DEPTH, adapter="full")
COUNTS = torch.tensor([12.0, 6.0, 3.0, 1.0])
LAST_BLOCK = f"backbone.blocks.{DEPTH - 1}."
EXPECTED_NAMES = ["scilt", "final_only", "penultimate_only", "fused_single_head", "dual_no_fusion", "fixed_alpha",
                  "ce", "car", "car_final_only", "h2t", "pi_h2t"]


def _model(name: str, seed: int = 0, **overrides):
    method = MethodConfig(name=name)
    model_config, train_config = method.method.configure(ModelConfig(**{**TINY.__dict__, **overrides}),
                                                         TrainConfig())
    torch.manual_seed(seed)
    model = build_model(model_config)
    method.method.prepare_model(model, method)
    return model, train_config, method


def _batch(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(8, 3, 16, 16, generator=gen), torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])


def _heads(model) -> set[str]:
    return {n for n, _ in model.named_parameters() if not n.startswith("backbone.")}


def test_registry_holds_every_method_of_the_issue_in_table_order():
    assert list(METHODS) == EXPECTED_NAMES
    for name in EXPECTED_NAMES:
        assert get_method(name).name == name and get_method(name).summary
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match="unknown method"):
        MethodConfig(name="nope")


@pytest.mark.parametrize("name, heads, fusion, alpha, tau", [
    ("scilt", 2, "adaptive", None, 1.0), ("final_only", 1, "fixed", 0.0, 1.0),
    ("penultimate_only", 1, "fixed", 1.0, 1.0), ("fused_single_head", 1, "adaptive", None, 1.0),
    ("dual_no_fusion", 2, "fixed", 0.0, 1.0), ("fixed_alpha", 2, "fixed", 0.5, 1.0), ("ce", 2, "adaptive", None, 0.0),
    ("car", 2, "adaptive", None, 1.0), ("car_final_only", 1, "fixed", 0.0, 1.0), ("h2t", 2, "adaptive", None, 1.0),
    ("pi_h2t", 2, "adaptive", None, 1.0)])
def test_each_method_fixes_its_settings(name, heads, fusion, alpha, tau):
    model, train_config, method = _model(name)
    assert (model.config.heads, model.config.fusion, train_config.tau) == (heads, fusion, tau)
    if alpha is not None:
        assert float(model.alpha) == alpha
    assert (model.head2 is None) == (heads == 1)
    assert ("fusion.logit" in _heads(model)) == (fusion == "adaptive")
    assert (model.train_feature_fusion is not None) == (name == "pi_h2t")
    assert method.method.couples_batch == (name in ("car", "car_final_only", "pi_h2t"))


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_one_step_sends_gradients_to_exactly_the_intended_parameters(name):
    model, train_config, method = _model(name)
    objective = Objective(method, COUNTS, tau=train_config.tau, lam=train_config.lam, num_classes=4)
    x, y = _batch()
    if method.method.car:
        objective(model(x, y), y)  # CAR's first batch only initialises its EMA
        model.zero_grad(set_to_none=True)
    loss = objective(model(x, y), y)
    loss.backward()
    heads = {"head1.weight"} | ({"head2.weight"} if model.config.heads == 2 else set()) \
        | ({"fusion.logit"} if model.config.fusion == "adaptive" else set())
    assert _heads(model) == heads  # parameters a method does not use do not exist at all
    for param_name, param in model.named_parameters():
        unused = param_name.startswith(LAST_BLOCK) and name == "penultimate_only"  # ψ_2 feeds no score
        got = param.grad is not None and bool(param.grad.abs().sum() > 0)
        assert got != unused, param_name
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), param_name
    assert model.uses_final_block == (name != "penultimate_only")


def test_lora_backbone_keeps_its_frozen_weights_without_gradient():
    model, train_config, method = _model("final_only", adapter="lora")
    x, y = _batch()
    Objective(method, COUNTS, tau=1.0, lam=1.0, num_classes=4)(model(x, y), y).backward()
    for param_name, param in model.named_parameters():
        if param_name.startswith("backbone.") and ".lora_" not in param_name:
            assert not param.requires_grad and param.grad is None, param_name


def test_ce_is_plain_cross_entropy_on_both_heads_and_scilt_is_logit_adjusted():
    x, y = _batch()
    model, train_config, method = _model("ce")
    out = model(x, y)
    got = Objective(method, COUNTS, tau=train_config.tau, lam=train_config.lam, num_classes=4)(out, y)
    torch.testing.assert_close(got, F.cross_entropy(out.s1, y) + F.cross_entropy(out.s2, y))
    log_prior = torch.log(COUNTS / COUNTS.sum())
    la = F.cross_entropy(out.s1 + log_prior, y) + F.cross_entropy(out.s2 + log_prior, y)
    torch.testing.assert_close(supervised_loss(out, y, COUNTS, tau=1.0, lam=1.0), la)
    single, _, _ = _model("final_only")
    out1 = single(x)
    assert out1.s2 is None and torch.equal(out1.logits, out1.s1)
    torch.testing.assert_close(supervised_loss(out1, y, COUNTS, tau=1.0, lam=1.0),
                               F.cross_entropy(out1.s1 + log_prior, y))


def test_car_adds_its_penalty_to_the_supervised_loss_from_the_second_batch_on():
    x, y = _batch()
    model, train_config, method = _model("car")
    objective = Objective(method, COUNTS, tau=1.0, lam=1.0, num_classes=4)
    out = model(x, y)
    base = supervised_loss(out, y, COUNTS, tau=1.0, lam=1.0)
    first = objective(out, y)
    assert float(first.detach()) == pytest.approx(float(base.detach()) + 0.3 * objective.car.last_spec, rel=1e-6)
    assert objective.car.steps == 1 and objective.car.ema is not None
    out2 = model(x, y)
    second = objective(out2, y)
    penalty = second - supervised_loss(out2, y, COUNTS, tau=1.0, lam=1.0)
    assert penalty.requires_grad and float(penalty.detach()) > 0  # the EMA now carries this batch's gradient
    state = objective.state_dict()
    fresh = Objective(method, COUNTS, tau=1.0, lam=1.0, num_classes=4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.car.ema, objective.car.ema) and fresh.car.steps == 2


def test_pif_acts_only_when_the_labels_are_given():
    x, y = _batch()
    model, _, _ = _model("pi_h2t")
    model.eval()
    plain = model(x)
    fused = model(x, y)
    assert not torch.allclose(plain.logits, fused.logits)
    torch.testing.assert_close(model(x, None).logits, plain.logits, rtol=0, atol=0)
    # the class-3 sample is alone in its class: PIF leaves it as it is
    torch.testing.assert_close(fused.logits[7], plain.logits[7])


@pytest.mark.parametrize("name, radii", [
    ("scilt", (2, 1)), ("final_only", (0, 1)), ("penultimate_only", (1, 0)), ("fused_single_head", (1, 1)),
    ("dual_no_fusion", (1, 1)), ("fixed_alpha", (1.5, 0.5)), ("car_final_only", (0, 1)), ("pi_h2t", (2, 1))])
def test_class_radii_bound_every_reachable_decomposition(name, radii):
    model, _, _ = _model(name)
    s = model.effective_scale
    assert model.class_radii() == pytest.approx((radii[0] * s, radii[1] * s))
    x, _ = _batch()
    logits = [-30.0, -2.0, 0.0, 1.5, 30.0] if model.config.fusion == "adaptive" else [None]
    for trial, logit in enumerate(logits):
        with torch.no_grad():
            if logit is not None:
                model.fusion.logit.fill_(logit)
            gen = torch.Generator().manual_seed(trial)
            for head in (model.head1, model.head2):
                if head is not None:
                    head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 5)
            out = model(x)
            u, v = model.decomposition()
            torch.testing.assert_close(out.logits, out.psi1 @ u.T + out.psi2 @ v.T, rtol=1e-5, atol=1e-4)
            assert float(u.norm(dim=1).max()) <= model.class_radii()[0] * (1 + 1e-6) + 1e-9
            assert float(v.norm(dim=1).max()) <= model.class_radii()[1] * (1 + 1e-6) + 1e-9


def test_h2t_stage_retrains_heads_and_alpha_only():
    model, train_config, method = _model("h2t")
    data = build_dataset(DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=2,
                                    image_size=16, num_classes=4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(quiet=True, eval_batch_size=16)
    method = MethodConfig(name="h2t", h2t=replace(method.h2t, epochs=2, batch_size=16))
    history = retrain_heads_h2t(model, data.train_images, data.train_labels, torch.as_tensor(data.class_counts).float(),
                                config,
                                method, torch.device("cpu"))
    assert len(history) == 2 and all(math.isfinite(h["loss"]) for h in history)
    for param_name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), before[param_name])
        assert changed == (not param_name.startswith("backbone.")), param_name
        assert param.requires_grad  # the backbone's flags are restored after the stage


SMALL_DATA = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=4, image_size=16,
                        num_classes=3)
SMALL_MODEL = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")


def _train(name: str, out, **kw):
    method = MethodConfig(name=name, h2t=replace(MethodConfig().h2t, epochs=1, batch_size=8))
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.01, warmup_epochs=0, out=str(out), quiet=True,
                         **kw)
    return train(SMALL_DATA, SMALL_MODEL, config, method=method)


def _interrupted(name: str, out, monkeypatch, *, at_step: int) -> None:
    """Train and stop right after the periodic save of optimiser step ``at_step`` (in-process stand-in for a kill)."""
    train_until_saved(lambda: _train(name, out, save_every=2), at_step, monkeypatch)


@pytest.mark.parametrize("name", ["final_only", "car", "pi_h2t"])
def test_run_pt_records_the_method_and_the_bounds_use_its_class(name, tmp_path):
    from scilt_theory.bounds_pipeline import BoundsSettings, compute_bounds_report
    from scilt_theory.checkpoint import load_run

    result = _train(name, tmp_path)
    record = load_run(result.run_path)
    assert record["method"] == name and MethodConfig.from_dict(record["method_config"]).name == name
    if name == "car":
        assert record["method_state"]["car"]["steps"] == math.ceil(sum(record["fit_counts"]) / 8)  # one per batch
        assert record["method_state"]["car"]["ema"].shape == (3, 3)
    if name == "pi_h2t":
        assert "h2t_history" in record["metrics"]
    report = compute_bounds_report(result.run_path, BoundsSettings(draws=50, progress=False)).to_json()
    s = 25.0
    want = {"final_only": (0.0, s), "car": (2 * s, s), "pi_h2t": (2 * s, s)}[name]
    assert (report["radii"]["penultimate"], report["radii"]["final"]) == want
    assert report["run"]["method"] == name and report["run"]["method_summary"] == get_method(name).summary
    if name == "final_only":
        assert report["rademacher"]["penultimate"]["value"] == 0.0 and report["coupled"] is None
    else:
        assert report["coupled"] is not None
    spectral = report["spectral"]
    # THEORY §6: ‖C‖₁ of the test confusion rates is exactly the worst-class test error
    assert spectral["test"]["norm_1"] == pytest.approx(report["worst_class"]["test_error"], abs=1e-12)
    assert spectral["test"]["norm_1"] <= spectral["test"]["sqrt_k_norm_2"] + 1e-12
    assert spectral["corollary54_worst_class_bound"] == report["worst_class"]["bound"]
    assert (spectral["car_ema"] is not None) == (name == "car")


def test_batch_coupled_and_two_stage_methods_refuse_multi_process_training(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "_CONTEXT", DistContext(rank=0, world_size=2))
    for name in ("car", "pi_h2t", "h2t"):
        with pytest.raises(ValueError, match=f"method '{name}' runs in one process only"):
            _train(name, tmp_path / name)


def test_resume_refuses_another_method(tmp_path, monkeypatch):
    from scilt_theory.checkpoint import CheckpointError

    _interrupted("scilt", tmp_path, monkeypatch, at_step=2)
    method = MethodConfig(name="car")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.01, warmup_epochs=0, out=str(tmp_path),
                         quiet=True, save_every=2)
    with pytest.raises(CheckpointError, match=r"method 'car' \(checkpoint: 'scilt'\)"):
        train(SMALL_DATA, SMALL_MODEL, config, method=method, resume=tmp_path / "run.pt")


def test_cli_refuses_an_option_that_contradicts_the_method(tmp_path):
    from experiments import train as train_cli
    from experiments._cli import run_main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_main(train_cli.main, ["--method", "final_only", "--heads", "2", "--out", str(tmp_path)])
    assert code == 2
    assert err.getvalue().strip() == ("error: --heads 2 contradicts --method final_only, which fixes heads = 1")
    with contextlib.redirect_stderr(err):
        assert run_main(train_cli.main, ["--method", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown method 'bogus'" in err.getvalue()


def test_method_config_round_trips_through_its_dictionary():
    from scilt_theory.car import CARConfig

    config = MethodConfig(name="car_final_only", car=CARConfig(lam=0.5, beta=0.5))
    assert MethodConfig.from_dict(config.to_dict()) == config
    assert MethodConfig.from_dict(None) == MethodConfig()
    with pytest.raises(ValueError, match="not valid"):
        MethodConfig.from_dict({"name": "car", "car": {"nope": 1}})


@pytest.mark.parametrize("name", ["car", "pi_h2t"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(name, tmp_path, monkeypatch):
    """CAR's confusion EMA and PI-H2T's re-training stage come back exactly with --resume (state in run.pt)."""
    reference = _train(name, tmp_path / "ref", save_every=2)
    _interrupted(name, tmp_path / "cut", monkeypatch, at_step=4)  # mid-epoch: 6 steps per epoch
    method = MethodConfig(name=name, h2t=replace(MethodConfig().h2t, epochs=1, batch_size=8))
    config = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=0.01, warmup_epochs=0,
                         out=str(tmp_path / "cut"), quiet=True, save_every=2)
    resumed = train(SMALL_DATA, SMALL_MODEL, config, method=method, resume=tmp_path / "cut" / "run.pt")
    for key, value in reference.model.trainable_state_dict().items():
        assert torch.equal(value, resumed.model.trainable_state_dict()[key]), key
    assert reference.metrics["balanced_accuracy"] == resumed.metrics["balanced_accuracy"]
