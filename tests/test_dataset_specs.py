"""The registry's DatasetSpec: what every data set is, the options it takes, and a new reader end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import real_formats as rf
import torch

from scilt_theory.data import DATASETS, DataConfig, DatasetSpec, build_dataset, register_dataset
from scilt_theory.data.registry import COMMON_OPTIONS, POOL_OPTIONS

READERS = {"nih-cxr-lt", "isic2019", "bloodmnist", "imagefolder"}


def test_every_registered_name_has_a_spec_that_says_what_it_is():
    assert set(DATASETS) == READERS | {"scitiles-pop", "scitiles-lt", "digits-lt", "synthetic-lt", "nih-profile",
                                       "nih-profile-single"}
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name and spec.summary
        assert spec.reads_files == (name in READERS) == spec.timm_preprocessing
        assert not spec.options & COMMON_OPTIONS
    for name in ("scitiles-lt", "digits-lt", "synthetic-lt"):
        assert DATASETS[name].options == frozenset()
    assert DATASETS["scitiles-pop"].options == frozenset({"crop_size", "photons", "read_noise"})
    assert DATASETS["imagefolder"].options == POOL_OPTIONS | {"test_root", "data_root", "interpolation", "crop_pct"}
    assert "test_root" not in DATASETS["isic2019"].options


def _builder(config):  # pragma: no cover - never built
    raise AssertionError


@pytest.mark.parametrize("fields,match", [
    (dict(reads_files=None), "must say whether it reads files"),
    (dict(reads_files=1), "must say whether it reads files"),
    (dict(reads_files=False, timm_preprocessing="yes"), "must say whether it timm preprocessing"),
    (dict(reads_files=False, options=frozenset({"no_such_field"})), "name no DataConfig field: no_such_field"),
    (dict(reads_files=False, options=frozenset({"seed"})), "which every data set takes"),
    (dict(reads_files=False, options=frozenset({"data_root"})), "reads no files but takes data_root"),
    (dict(reads_files=False, options="profile"), "a set of DataConfig field names"),
])
def test_a_spec_that_contradicts_itself_is_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        DatasetSpec("x-lt", _builder, **fields)


def test_a_reader_registered_without_saying_whether_it_reads_files_is_refused():
    with pytest.raises(TypeError, match="reads_files"):
        DatasetSpec("x-lt", _builder)  # a required field of the spec
    with pytest.raises(ValueError, match="reads_files=True .* or reads_files=False"):
        register_dataset("x-lt", _builder)
    assert "x-lt" not in DATASETS


def test_implied_options():
    spec = DatasetSpec("x-lt", _builder, reads_files=True, timm_preprocessing=True)
    assert spec.options == {"data_root", "interpolation", "crop_pct"}
    assert spec.accepts("seed") and spec.accepts("data_root") and not spec.accepts("test_root")


@pytest.mark.parametrize("config,message", [
    (DataConfig(name="scitiles-lt", data_root="/x"),
     "scitiles-lt is an embedded data set (it reads no files); the option(s) --data-root apply to real data sets "
     "read from --data-root (bloodmnist, imagefolder, isic2019, nih-cxr-lt) only"),
    (DataConfig(name="digits-lt", test_split="natural", test_fraction=0.5),
     "digits-lt is an embedded data set (it reads no files); the option(s) --test-split, --test-fraction apply to "
     "real data sets read from --data-root (bloodmnist, imagefolder, isic2019, nih-cxr-lt) only"),
    (DataConfig(name="synthetic-lt", profile="natural"),
     "synthetic-lt is an embedded data set (it reads no files); the option(s) --profile apply to bloodmnist, "
     "imagefolder, isic2019, nih-cxr-lt, nih-profile, nih-profile-single only"),
    (DataConfig(name="nih-profile", interpolation="bilinear"),
     "nih-profile is an embedded data set (it reads no files); the option(s) --interpolation apply to real data "
     "sets read from --data-root (bloodmnist, imagefolder, isic2019, nih-cxr-lt) only"),
    (DataConfig(name="isic2019", data_root="/x", test_root="/y"),
     "--test-root applies to imagefolder only, not to isic2019"),
])
def test_options_outside_the_spec_are_refused_naming_where_they_apply(config, message):
    with pytest.raises(ValueError) as info:
        build_dataset(config)
    assert str(info.value) == message


@pytest.fixture
def registered():
    """Register specs for one test and remove them after it."""
    names = []

    def register(spec):
        names.append(spec.name)
        return register_dataset(spec)

    yield register
    for name in names:
        DATASETS.pop(name, None)


def _folder_reader(name):
    from scilt_theory.data.files import data_root
    from scilt_theory.data.imagefolder import LAYOUT, pool_from_class_folders
    from scilt_theory.data.split import build_longtail

    def build(config):
        return build_longtail(name, pool_from_class_folders(data_root(config, LAYOUT), None, config, name), config)
    return build


def test_a_new_reader_registered_with_a_spec_works_end_to_end(tmp_path, registered, capsys):
    from experiments import bounds as bounds_cli
    from experiments import data as data_cli
    from experiments import train as train_cli
    from experiments._cli import run_main

    registered(DatasetSpec("my-folders", _folder_reader("my-folders"), reads_files=True,
                           options=frozenset({"profile", "test_split", "test_fraction"}), timm_preprocessing=True,
                           summary="a reader added after the fact"))
    root = tmp_path / "tree"
    rf.image_folder(root, {"a": 14, "b": 9, "c": 6})
    # the data command lists and builds it
    assert "my-folders: a reader added after the fact" in data_cli.build_parser().description
    code = run_main(data_cli.main, ["--dataset", "my-folders", "--data-root", str(root), "--profile", "natural",
                                    "--test-per-class", "2", "--out", str(tmp_path / "summary"), "--quiet"])
    assert code == 0
    summary = json.loads((tmp_path / "summary" / "data_summary.json").read_text())
    assert summary["train_counts"] == [12, 7, 4] and summary["provenance"]["test_same_distribution"] is True
    # its spec, not a side list, makes experiments.train fill timm's resize settings; it trains and is bounded
    out = tmp_path / "run"
    assert train_cli.main(["--dataset", "my-folders", "--data-root", str(root), "--profile", "natural",
                           "--test-per-class", "2", "--img-size", "16", "--patch-size", "8", "--depth", "2",
                           "--adapter", "full", "--epochs", "1", "--batch-size", "8", "--out", str(out),
                           "--quiet"]) == 0
    record = torch.load(out / "run.pt", weights_only=True)
    assert record["data_config"]["interpolation"] == "bicubic" and record["data_config"]["crop_pct"] == 0.9
    assert bounds_cli.main(["--ckpt", str(out / "run.pt"), "--draws", "30", "--no-plots", "--quiet"]) == 0
    # an option its spec does not list is refused in one line, naming where it applies
    capsys.readouterr()
    code = run_main(data_cli.main, ["--dataset", "my-folders", "--data-root", str(root), "--test-root", str(root),
                                    "--out", str(tmp_path / "o")])
    assert code == 2 and "--test-root applies to imagefolder only, not to my-folders" in capsys.readouterr().err


def test_a_new_embedded_data_set_refuses_data_root_and_gets_no_timm_settings(registered):
    import argparse

    from experiments.train import data_config_names_real
    from scilt_theory.data.synthetic import build_synthetic

    registered(DatasetSpec("my-embedded", lambda c: build_synthetic(c), reads_files=False, summary="noise"))
    assert build_dataset(DataConfig(name="my-embedded", image_size=8)).num_classes == 5
    with pytest.raises(ValueError, match="my-embedded is an embedded data set"):
        build_dataset(DataConfig(name="my-embedded", data_root=str(Path.cwd())))
    assert not data_config_names_real(argparse.Namespace(**{"DataConfig.name": "my-embedded"}))
    assert data_config_names_real(argparse.Namespace(**{"DataConfig.name": "isic2019"}))
    assert not data_config_names_real(argparse.Namespace(**{"DataConfig.name": "nope"}))
