"""The content-addressed feature store (scilt_theory/feature_store.py): what it keys on, and that a run or a bounds
pass reading it gives bit for bit what extracting again gives."""

from __future__ import annotations

import json

import torch

from experiments import bounds as bounds_cli
from scilt_theory.data import DataConfig
from scilt_theory.feature_store import FeatureStore
from scilt_theory.features import extract_features
from scilt_theory.models import ModelConfig, build_model
from scilt_theory.training import TrainConfig, train

D = DataConfig(name="synthetic-lt", imbalance=4.0, max_per_class=24, test_per_class=4, image_size=16, num_classes=3)
M = ModelConfig(num_classes=3, arch="test_vit", img_size=16, patch_size=4, depth=2, adapter="none")


def _config(out, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "warmup_epochs": 0,
                          "out": str(out), "quiet": True, "holdout_fraction": 0.3, **kw})


def test_the_key_names_exactly_the_numbers_extracted():
    torch.manual_seed(0)
    model = build_model(M).eval()
    images = torch.rand(5, 3, 16, 16)
    key = FeatureStore.key(model, images, "batches", batch_size=4)
    assert key == FeatureStore.key(model, images.clone(), "batches", batch_size=4)
    assert key != FeatureStore.key(model, images, "batches", batch_size=2)          # another batching
    other = images.clone()
    other[0, 0, 0, 0] += 1e-6
    assert key != FeatureStore.key(model, other, "batches", batch_size=4)           # other pixels
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1e-6)
    assert key != FeatureStore.key(model, images, "batches", batch_size=4)          # another backbone


def test_stored_features_give_the_extraction_bit_for_bit_and_a_broken_file_is_recomputed(tmp_path):
    torch.manual_seed(0)
    model = build_model(M).eval()
    images, labels = torch.rand(9, 3, 16, 16), torch.arange(9) % 3
    store = FeatureStore(tmp_path)
    plain = extract_features(model, images, labels, batch_size=4, progress=False)
    first = extract_features(model, images, labels, batch_size=4, progress=False, store=store)
    (path,) = tmp_path.glob("*.safetensors")
    assert path == store.path(FeatureStore.key(model, images, "batches", batch_size=4, device="cpu",
                                               dtype=str(torch.float64)))  # filed under its content key
    backbone_calls = []
    model.features = lambda x: backbone_calls.append(x) or (_ for _ in ()).throw(AssertionError("recomputed"))
    second = extract_features(model, images, labels, batch_size=4, progress=False, store=store)
    assert not backbone_calls  # read back: the backbone did not run
    del model.features
    for a, b, c in zip(plain.__dict__.values(), first.__dict__.values(), second.__dict__.values()):
        assert torch.equal(a, b) and torch.equal(a, c)
    path.write_bytes(b"not a safetensors file")
    again = extract_features(model, images, labels, batch_size=4, progress=False, store=store)
    assert torch.equal(again.scores, plain.scores)


def test_frozen_runs_and_their_bounds_read_the_store_and_change_no_number(tmp_path):
    store = tmp_path / "store"
    plain = train(D, M, _config(tmp_path / "plain"))
    stored = train(D, M, _config(tmp_path / "stored", feature_store=str(store)))
    files = sorted(p.name for p in store.glob("*.safetensors"))
    assert files  # the 8 views of the fit images
    other_method_same_features = train(D, M, _config(tmp_path / "again", feature_store=str(store)))
    assert sorted(p.name for p in store.glob("*.safetensors")) == files  # read back, nothing new extracted
    for result in (stored, other_method_same_features):
        assert plain.model.trainable_state_dict().keys() == result.model.trainable_state_dict().keys()
        for key, value in plain.model.trainable_state_dict().items():
            assert torch.equal(value, result.model.trainable_state_dict()[key]), key
    reports, stored_files = [], []
    for name, extra in (("a", []), ("b", ["--feature-store", str(store)]), ("c", ["--feature-store", str(store)])):
        out = tmp_path / f"bounds_{name}"
        assert bounds_cli.main(["--ckpt", str(tmp_path / "plain" / "run.pt"), "--draws", "50", "--no-plots",
                                "--quiet", "--out", str(out), *extra]) == 0
        report = json.loads((out / "bounds.json").read_text())
        report.pop("timing")
        reports.append(report)
        stored_files.append(sorted(p.name for p in store.glob("*.safetensors")))
    # pass b stored the fit, hold-out and test features under their keys; pass c read them all back
    assert len(stored_files[1]) == len(files) + 3 and stored_files[2] == stored_files[1]
    assert reports[0]["statements"] == reports[1]["statements"] == reports[2]["statements"]
    assert reports[0] == reports[1] == reports[2]
