"""Issue 27: a newcomer's path from the demo to their own data, and outputs that are never mixed, half-written or
unbounded. Every command parses its arguments first; train takes named recipes; real data keep every image and say
what they leave out; the fingerprint covers content; bounds accepts any statement subset, refuses unbounded
options, reports progress, writes its folder as a whole; report.md and the figures read at a glance."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import pytest

from experiments import _cli
from experiments import bounds as bounds_cli
from experiments import compare as compare_cli
from experiments import data as data_cli
from experiments import demo as demo_cli
from experiments import plot as plot_cli
from experiments import train as train_cli
from experiments import weights as weights_cli
from experiments._cli import run_main
from scilt_theory import pretrained, recipes
from scilt_theory.data import DataConfig, build_dataset
from scilt_theory.models import ModelConfig

sys.path.insert(0, str(Path(__file__).parent))
from real_formats import image_folder  # noqa: E402
from test_api import train_tiny_run  # noqa: E402
from test_plotting import _all_fonts_readable  # noqa: E402

COMMANDS = {"train": train_cli.main, "bounds": bounds_cli.main, "plot": plot_cli._plot, "demo": demo_cli.main,
            "data": data_cli.main, "compare": compare_cli.main, "weights": weights_cli.main}


def _run(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_main(main, argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("newcomer") / "run")


# ---- 1. every command parses its arguments first --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_prints_and_exits_0_and_unknown_options_are_refused(name, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(demo_cli, "get_weights", no_work)  # the demo used to ignore argv and run
    monkeypatch.setattr(pretrained, "pretrained_weights", no_work)
    code, out, err = _run(COMMANDS[name], ["--help"])
    assert code == 0 and out.startswith("usage: python -m experiments.") and not err
    required = {"bounds": ["--ckpt", "run.pt"], "compare": ["--out", "o"], "plot": ["--bounds", "b"]}
    code, out, err = _run(COMMANDS[name], [*required.get(name, []), "--no-such-option"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--no-such-option" in lines[0] and lines[0].startswith("error: ")


def test_bounds_help_lists_every_registered_statement():
    from scilt_theory.statements import STATEMENTS

    text = bounds_cli.build_parser().format_help().replace("\n", " ")
    text = " ".join(text.split())
    assert all(name in text for name in STATEMENTS)
    assert "at most" not in text or "1,000,000" in text


# ---- 2. recipes, defaults for one's own data, warnings ----------------------------------------------------------
def test_a_recipe_is_typed_and_options_beside_it_win(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "pretrained_weights", lambda *a, **k: pytest.fail("--weights given: no fetch"))
    argv = ["--recipe", "dinov2-lora", "--dataset", "scitiles-lt", "--epochs", "2", "--weights", "w.safetensors",
            "--out", str(tmp_path / "o")]
    data, model, config, _ = train_cli.resolve_configs(argv)
    assert config.epochs == 2 and model.adapter == "lora" and model.weights == "w.safetensors"
    assert model.arch == "vit_small_patch14_dinov2" and data.image_size == 98  # the rest is the recipe's
    with pytest.raises(_cli.UserError, match="lr"):  # an option beside it is checked against the configs as always
        train_cli.resolve_configs(["--recipe", "scratch", "--lr", "-1", "--out", str(tmp_path / "o")])
    code, _, err = _run(train_cli.main, ["--recipe", "scratch", "--resume", str(tmp_path / "x.pt")])
    assert code == 2 and "--recipe starts a new run" in err


def test_own_data_default_to_the_foundation_backbone_unless_a_model_option_is_given(tmp_path):
    parser = train_cli.build_parser()
    own = ["--dataset", "imagefolder", "--data-root", str(tmp_path)]
    assert train_cli.chosen_recipe(parser.parse_args(own)) == (recipes.DEFAULT_RECIPE, True)
    chosen = [*own, "--img-size", "32"]
    assert train_cli.chosen_recipe(parser.parse_args(chosen)) == (None, False)
    embedded = ["--dataset", "synthetic-lt"]
    assert train_cli.chosen_recipe(parser.parse_args(embedded)) == (None, False)


def test_adapters_on_a_random_frozen_backbone_are_warned_about():
    assert "randomly initialised" in train_cli.random_backbone_warning(ModelConfig(num_classes=3, adapter="lora"))
    assert train_cli.random_backbone_warning(ModelConfig(num_classes=3, adapter="full")) is None
    assert train_cli.random_backbone_warning(ModelConfig(num_classes=3, adapter="lora", weights="w.pt")) is None


# ---- real data: every image, named drops, content fingerprint ---------------------------------------------------
def test_imagefolder_keeps_every_image_and_the_subsample_is_opt_in(tmp_path, monkeypatch):
    monkeypatch.setenv("SCILT_THEORY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    image_folder(root, {"a": 30, "b": 20, "c": 12})
    (root / "empty").mkdir()
    data = build_dataset(DataConfig(name="imagefolder", data_root=str(root), image_size=16))
    test = data.test_labels.bincount(minlength=3).tolist()
    assert [int(n) + t for n, t in zip(data.class_counts, test)] == [30, 20, 12]  # nothing left out
    assert data.provenance["profile"] == "natural" and data.provenance["dropped_classes"] == ["empty"]
    assert any("'empty'" in note for note in data.provenance["notes"])
    sub = build_dataset(DataConfig(name="imagefolder", data_root=str(root), image_size=16, profile="exponential"))
    assert sum(sub.class_counts.tolist()) < sum(data.class_counts.tolist())
    assert any("leaving out" in note for note in sub.provenance["notes"])


def test_the_fingerprint_covers_content_and_is_computed_once(tmp_path, monkeypatch):
    import scilt_theory.data.split as split

    monkeypatch.setenv("SCILT_THEORY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    files = image_folder(root, {"a": 6, "b": 5})
    config = DataConfig(name="imagefolder", data_root=str(root), image_size=16, test_per_class=1)
    first = build_dataset(config).provenance["fingerprint"]

    def no_read(path):
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr(split, "file_sha256", no_read)  # unchanged files: the cache answers
    assert build_dataset(config).provenance["fingerprint"] == first
    monkeypatch.undo()
    monkeypatch.setenv("SCILT_THEORY_CACHE", str(tmp_path / "cache"))
    changed = files["a"][0]
    other = files["a"][1].read_bytes()
    changed.write_bytes(other)  # another image under the same name
    assert build_dataset(config).provenance["fingerprint"] != first


# ---- 5. any statement subset --------------------------------------------------------------------------------------
@pytest.mark.parametrize("names", [("corollary54",), ("tightest_uniform",), ("holdout_certificate",),
                                   ("weighted_margin_classwise", "testset_certificate")])
def test_any_statement_subset_gives_a_report(run_dir, tmp_path, names):
    code, out, err = _run(bounds_cli.main, ["--ckpt", str(run_dir / "run.pt"), "--draws", "30", "--out",
                                            str(tmp_path / "b"), "--statements", *names])
    assert code == 0, err
    report = json.loads((tmp_path / "b" / "bounds.json").read_text())
    assert set(names) <= {r["name"] for r in report["statements"]}
    assert "statements: added" in out or set(names) >= {"theorem53", "corollary54"}
    assert "Statements computed: those asked for" in (tmp_path / "b" / "report.md").read_text()


# ---- 6. progress when stdout is not a terminal --------------------------------------------------------------------
def test_heartbeat_prints_only_when_the_output_is_not_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, expected in ((io.StringIO(), True), (Terminal(), False)):
        with _cli.heartbeat("x", every=0.05, stream=stream) as beat:
            beat.phase = "counting"
            time.sleep(0.3)
        assert ("[x] still working: counting" in stream.getvalue()) is expected


def test_bounds_reports_progress_into_a_log(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(_cli, "HEARTBEAT_SECONDS", 0.2)
    code, out, err = _run(bounds_cli.main, ["--ckpt", str(run_dir / "run.pt"), "--draws", "30", "--no-plots",
                                            "--out", str(tmp_path / "b")])
    assert code == 0, err
    assert "[bounds] still working: features, complexities and statements" in out


# ---- 7. a folder never mixes two runs -----------------------------------------------------------------------------
def test_a_bounds_folder_is_replaced_as_a_whole_and_kept_on_ctrl_c(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "b"
    argv = ["--ckpt", str(run_dir / "run.pt"), "--draws", "30", "--out", str(out), "--quiet"]
    assert _run(bounds_cli.main, argv)[0] == 0
    assert (out / "statements.png").exists()
    assert _run(bounds_cli.main, [*argv, "--no-plots"])[0] == 0  # a --no-plots rerun leaves no old figure
    assert sorted(p.name for p in out.iterdir()) == ["bounds.json", "report.md"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import scilt_theory.plotting as plotting

    def interrupted(report, stem):
        raise KeyboardInterrupt

    monkeypatch.setattr(plotting, "plot_statements", interrupted)
    code, _, err = _run(bounds_cli.main, [*argv, "--seed", "3"])
    assert code == 130 and err.startswith("error: interrupted")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous run, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary folder left beside it


def test_train_overwrite_replaces_the_run_and_its_bounds(run_dir, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / "bounds").mkdir(exist_ok=True)
    (out / "bounds" / "bounds.json").write_text("{}")
    (out / "feature_store").mkdir()
    argv = ["--dataset", "synthetic-lt", "--num-classes", "3", "--imbalance", "4", "--max-per-class", "24",
            "--test-per-class", "4", "--img-size", "16", "--patch-size", "4", "--depth", "2", "--adapter", "full",
            "--batch-size", "8", "--epochs", "1", "--quiet", "--out", str(out)]
    code, _, err = _run(train_cli.main, argv)
    assert code == 2 and "--overwrite" in err
    code, _, err = _run(train_cli.main, [*argv, "--overwrite"])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["feature_store", "metrics.json", "metrics.md", "run.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ---- 4. readable outputs ------------------------------------------------------------------------------------------
def test_report_md_opens_with_a_five_line_bottom_line_and_escapes_names(run_dir, tmp_path):
    import scilt_theory

    report = scilt_theory.bounds_report(run_dir / "run.pt", mode="certified", draws=30)
    rows = [dataclasses.replace(r, name="a|b\nc") if r.class_index == 0 else r for r in report.per_class]
    text = dataclasses.replace(report, per_class=rows).markdown()
    head = text.split("## Bottom line\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line[:3] for line in head] == ["1. ", "2. ", "3. ", "4. ", "5. "]
    assert "**Best certificate**" in head[0] and "vacuous" in head[1] and "below 1 from" in head[1]
    assert "a\\|b c" in text and "a|b" not in text
    # certified mode: the groups are named by the counts they are defined on, and the rule is said once
    assert "group (by training count)" in text and "n (held-out part)" in text
    assert text.count("Many > 100") == 1


def test_bound_vs_n_has_one_panel_per_target_and_a_handful_of_legend_entries(run_dir):
    import scilt_theory
    from scilt_theory import plotting

    report = scilt_theory.bounds_report(run_dir / "run.pt", draws=30)
    fig = plotting.figure_bound_vs_n(report)
    panels = [ax for ax in fig.axes if ax.axison]
    targets = {r.target for r in report.statements if "curve" in r.terms}
    assert len(panels) == len([t for t, _ in plotting.BOUND_VS_N_PANELS if t in targets]) <= 5
    entries = [t for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    entries += [t for legend in fig.legends for t in legend.get_texts()]
    assert 3 <= len(entries) <= 6
    _all_fonts_readable(fig)
