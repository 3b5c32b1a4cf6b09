"""python -m experiments.bounds on a tiny checkpoint built here: schema, THEORY inequalities, plots, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments import bounds as bounds_cli
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bounds_run")
    data = DataConfig(name="synthetic-lt", imbalance=10.0, max_per_class=60, test_per_class=10, image_size=16,
                      num_classes=4)
    model = ModelConfig(num_classes=4, img_size=16, patch_size=4, depth=2, adapter="full")
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=2e-3, warmup_epochs=0, out=str(out),
                         quiet=True, holdout_fraction=0.3)
    return train(data, model, config).run_path


@pytest.fixture(scope="module")
def report(ckpt) -> dict:
    assert bounds_cli.main(["--ckpt", str(ckpt), "--draws", "300", "--quiet"]) == 0
    return json.loads((ckpt.parent / "bounds" / "bounds.json").read_text())


def test_bounds_json_schema(report):
    from scilt_theory.schema import BoundsReport

    for key in ("mode", "validity", "delta", "n", "num_classes", "rademacher", "coupled", "statements", "overall",
                "per_class", "groups", "worst_class"):
        assert key in report
    assert BoundsReport.from_json(report).to_json() == report  # the schema is the only definition, both ways
    for part in ("penultimate", "final", "sum"):
        assert {"value", "stderr", "upper", "method"} <= set(report["rademacher"][part])
    assert {"value", "ratio"} <= set(report["coupled"])
    assert {"bound", "train_margin_loss", "complexity", "confidence", "balanced_test_error", "vacuous"} \
        <= set(report["overall"])
    for row in report["per_class"]:
        assert {"class", "name", "n_train", "group", "bound", "test_error", "train_margin_loss", "vacuous"} <= set(row)
    assert set(report["groups"]) == {"many", "medium", "few"}
    assert {"bound", "test_error", "class"} <= set(report["worst_class"])
    assert report["mode"] == "diagnostic" and report["schema_version"] == 2
    for record in report["statements"]:
        assert {"name", "theory", "target", "certificate", "bound", "terms", "vacuous"} <= set(record)
    # the views are the statements' records
    by = {(r["name"], r["target"]): r for r in report["statements"]}
    assert by[("theorem53", "overall")]["bound"] == report["overall"]["bound"]
    assert [by[("corollary54", f"class:{c}")]["bound"] for c in range(report["num_classes"])] == \
        [row["bound"] for row in report["per_class"]]
    assert by[("corollary54", "worst_class")]["bound"] == report["worst_class"]["bound"]
    # full fine-tuning fitted the features on this sample: no uniform statement is a certificate; the hold-out and
    # test-set certificates are (the model never saw those samples, which follow the training distribution)
    assert report["validity"] == "diagnostic"
    assert not any(r["certificate"] for r in report["statements"] if r["family"] == "uniform")
    assert all(r["certificate"] for r in report["statements"] if r["family"] in ("hold-out", "test-set"))


def test_numbers_satisfy_theory_inequalities(report):
    rc = report["rademacher"]
    se = rc["penultimate"]["stderr"] + rc["final"]["stderr"]
    # Lemma 5.1: the sum class is at most the parts (equality for independent classes) up to MC tolerance
    assert rc["sum"]["value"] <= rc["penultimate"]["value"] + rc["final"]["value"] + 4 * se + 1e-12
    assert rc["sum"]["upper"] >= rc["sum"]["value"] - 1e-12
    # THEORY §2: the coupled class is a subset, so its complexity is at most the sum on the same draws
    assert report["coupled"]["value"] <= report["coupled"]["sum_value"] + 1e-9
    assert 0 < report["coupled"]["ratio"] <= 1 + 1e-9
    o = report["overall"]
    assert o["bound"] >= o["train_margin_loss"]
    assert o["bound"] == pytest.approx(o["train_margin_loss"] + o["complexity"] + o["confidence"])
    for row in report["per_class"]:
        if row["bound"] is None:
            assert row["reason"]
            continue
        assert row["bound"] >= max(row["train_margin_loss"], row["complexity"], row["confidence"])
        assert row["vacuous"] == (row["bound"] > 1)
    bounds = [r["bound"] for r in report["per_class"] if r["bound"] is not None]
    assert report["worst_class"]["bound"] == pytest.approx(max(bounds))


def test_plots_and_report_are_written(ckpt, report):
    out = ckpt.parent / "bounds"
    for stem in ("bound_vs_tail_error", "rademacher", "bound_decomposition"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    text = (out / "report.md").read_text()
    assert "Mode: diagnostic" in text and "Caveats" in text


def test_certified_mode_uses_the_held_out_part(ckpt, tmp_path):
    assert bounds_cli.main(["--ckpt", str(ckpt), "--mode", "certified", "--draws", "200", "--no-plots",
                            "--quiet", "--out", str(tmp_path)]) == 0
    cert = json.loads((tmp_path / "bounds.json").read_text())
    record = torch.load(ckpt, weights_only=True)
    assert cert["mode"] == "certified" and cert["n"] == len(record["holdout_indices"])


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.bounds", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def _foreign_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    return path


def _other_kind(ckpt: Path, tmp_path: Path) -> Path:
    record = torch.load(ckpt, weights_only=True)
    record["method"] = "some-other-model"
    path = tmp_path / "other.pt"
    torch.save(record, path)
    return path


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint at all")
    return path


@pytest.mark.parametrize("make_args,fragment", [
    (lambda c, t: ["--ckpt", str(t / "missing.pt")], "not found"),
    (lambda c, t: ["--ckpt", str(_garbage(t))], "not a readable"),
    (lambda c, t: ["--ckpt", str(_foreign_checkpoint(t))], "not a scilt-theory run"),
    (lambda c, t: ["--ckpt", str(c), "--delta", "1.5"], "delta must be a number in (0, 1), got 1.5"),
    (lambda c, t: ["--ckpt", str(c), "--delta", "0"], "delta must be a number in (0, 1), got 0.0"),
    (lambda c, t: ["--ckpt", str(c), "--draws", "-5"], "draws must be an integer >= 1, got -5"),
    (lambda c, t: ["--ckpt", str(c), "--margin", "-1"], "margin must be auto or a number > 0, got -1.0"),
    (lambda c, t: ["--ckpt", str(_other_kind(c, t))], "trained with method"),
])
def test_bad_input_gives_one_clear_line_and_nonzero_exit(ckpt, tmp_path, make_args, fragment):
    out = tmp_path / "out"
    proc = _run([*make_args(ckpt, tmp_path), "--out", str(out)])
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0]
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
