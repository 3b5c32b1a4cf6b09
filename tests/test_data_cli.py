"""``python -m experiments.data`` (counts, groups, imbalance factor, JSON + Markdown, one-line errors) and the
bounds command's ``--data-root`` when the data moved."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import real_formats as rf
import torch

from experiments import data as data_cli
from experiments._cli import run_main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, main, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_main(main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_data_command_writes_counts_groups_and_imbalance(tmp_path, capsys):
    rf.image_folder(tmp_path / "tree", {"a": 30, "b": 16, "c": 9, "d": 6})
    out = tmp_path / "summary"
    code, printed, _ = run(capsys, data_cli.main, "--dataset", "imagefolder", "--data-root", str(tmp_path / "tree"),
                           "--imbalance", "5", "--test-per-class", "1", "--many-threshold", "20",
                           "--few-threshold", "6", "--out", str(out))
    assert code == 0
    summary = json.loads((out / "data_summary.json").read_text())
    # the largest head whose ⌊n_max·5^(−c/3)⌋ fit the 29, 15, 8, 5 left: 27 would need 9 of class c
    assert summary["train_counts"] == [26, 15, 8, 5]
    assert summary["test_counts"] == [1, 1, 1, 1] and summary["imbalance_factor"] == 5.2
    assert summary["groups"] == ["many", "medium", "medium", "few"]
    assert summary["provenance"]["pool_counts"] == [30, 16, 9, 6]
    assert summary["config"]["data_root"] == str(tmp_path / "tree")
    text = (out / "data_summary.md").read_text()
    assert "imbalance factor n_max / n_min: **5.2**" in text and "| 3 | d | few | 5 | 1 | 6 |" in text
    assert "imbalance factor" in printed


def test_data_command_on_the_nih_profile(tmp_path, capsys):
    code, printed, _ = run(capsys, data_cli.main, "--dataset", "nih-profile", "--out", str(tmp_path), "--quiet")
    assert code == 0
    summary = json.loads((tmp_path / "data_summary.json").read_text())
    assert summary["train_counts"][0] == 60361 and summary["train_counts"][-1] == 227
    assert summary["imbalance_factor"] == pytest.approx(60361 / 227)
    assert summary["provenance"]["profile_source"]["rows"] == 112120


@pytest.mark.parametrize("args, match", [
    (["--dataset", "isic2019"], "pass --data-root"),
    (["--dataset", "isic2019", "--data-root", "{root}"], "ISIC_2019_Training_GroundTruth.csv is missing under"),
    (["--dataset", "nih-cxr-lt", "--data-root", "{root}/nowhere"], "does not exist"),
    (["--dataset", "nope"], "unknown data set"),
    (["--dataset", "imagefolder", "--data-root", "{root}", "--profile", "zipf"],
     "one of 'exponential', 'natural', got 'zipf'"),
])
def test_data_command_fails_in_one_line(tmp_path, capsys, args, match):
    args = [a.replace("{root}", str(tmp_path)) for a in args]
    code, _, err = run(capsys, data_cli.main, *args, "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert match in err
    assert not (tmp_path / "out" / "data_summary.json").exists()


def test_data_command_reports_a_corrupt_image(tmp_path, capsys):
    files = rf.image_folder(tmp_path, {"a": 6, "b": 4})
    files["a"][0].write_bytes(b"not an image")
    code, _, err = run(capsys, data_cli.main, "--dataset", "imagefolder", "--data-root", str(tmp_path),
                       "--test-per-class", "1", "--decode", "10", "--out", str(tmp_path / "out"))
    assert code == 2 and "cannot read image" in err and "a_000.png" in err


def test_data_command_runs_as_a_module(tmp_path):
    rf.image_folder(tmp_path / "tree", {"a": 6, "b": 4})
    result = subprocess.run([sys.executable, "-m", "experiments.data", "--dataset", "imagefolder", "--data-root",
                             str(tmp_path / "tree"), "--test-per-class", "1", "--out", str(tmp_path / "o"), "--quiet"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "data_summary.md").exists()


def test_bounds_with_data_root_after_the_data_moved(tmp_path, capsys):
    from experiments import bounds as bounds_cli
    from experiments import train as train_cli

    original = tmp_path / "isic"
    rf.isic2019(original, {"NV": 10, "MEL": 7, "BCC": 5})
    run_dir = tmp_path / "run"
    assert train_cli.main(["--dataset", "isic2019", "--data-root", str(original), "--imbalance", "2",
                           "--img-size", "16", "--patch-size", "8", "--depth", "2", "--adapter", "full",
                           "--epochs", "1", "--batch-size", "8", "--out", str(run_dir), "--quiet"]) == 0
    ckpt = str(run_dir / "run.pt")
    moved = tmp_path / "elsewhere"
    shutil.move(str(original), str(moved))
    code, _, err = run(capsys, bounds_cli.main, "--ckpt", ckpt, "--draws", "30", "--no-plots", "--quiet")
    assert code == 2 and "pass --data-root PATH if the data moved" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, bounds_cli.main, "--ckpt", ckpt, "--draws", "30", "--no-plots", "--quiet",
                       "--data-root", str(moved))
    assert code == 0, err
    # other data under the same layout: the class counts recorded in run.pt no longer match
    other = tmp_path / "other"
    rf.isic2019(other, {"NV": 10, "MEL": 4, "BCC": 3})
    code, _, err = run(capsys, bounds_cli.main, "--ckpt", ckpt, "--draws", "30", "--no-plots", "--quiet",
                       "--data-root", str(other))
    assert code == 2 and "class counts recorded in the checkpoint" in err
    # the same counts but other images (one file renamed and relisted): the split fingerprint tells them apart
    renamed = tmp_path / "renamed"
    shutil.copytree(moved, renamed)
    table = renamed / "ISIC_2019_Training_GroundTruth.csv"
    table.write_text(table.read_text().replace("ISIC_0000003", "ISIC_0099999"))
    image = renamed / "ISIC_2019_Training_Input"
    (image / "ISIC_0000003.jpg").rename(image / "ISIC_0099999.jpg")
    code, _, err = run(capsys, bounds_cli.main, "--ckpt", ckpt, "--draws", "30", "--no-plots", "--quiet",
                       "--data-root", str(renamed))
    assert code == 2 and "fingerprint recorded in run.pt" in err
    record = torch.load(ckpt, weights_only=True)
    assert record["data_config"]["data_root"] == str(original) and len(record["data_fingerprint"]) == 64
