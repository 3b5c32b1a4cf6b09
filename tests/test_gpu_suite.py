"""benchmarks/gpu_suite.sh: the smoke run passes on CPU and writes the summary; a failing or timed-out item is an
error (exit 1) while a missed goal is not; the peak table, goal rule and CUDA-test discovery say what they should.

Timings are never asserted: on CPU at smoke sizes they mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks import gpu_suite

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.sh"
KEYS = {"name", "value", "unit", "ratio", "goal", "ok"}


def _suite(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_smoke_run_writes_every_item_and_exits_zero(tmp_path):
    out = tmp_path / "smoke"
    proc = _suite("--smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {"device", "torch", "driver", "date", "items"} <= set(summary)
    assert summary["device"].startswith("cpu") and summary["torch"] and summary["mode"] == "smoke"
    items = summary["items"]
    names = [i["name"] for i in items]
    assert len(items) >= 4 and len(set(names)) == len(names)
    assert set(names) == {n for spec in gpu_suite.TASKS.values() for n in spec["items"]}
    for i in items:
        assert KEYS <= set(i), i
        assert i["status"] != "error", i
        assert i["ok"] == (i["status"] in ("met", "ran"))
    by = {i["name"]: i for i in items}
    for name in ("train_step", "train_step_compiled", "dual_forward", "rademacher_mc"):
        assert by[name]["ratio"] > 0 and by[name]["value"] > 0 and by[name]["goal"]
    assert by["cuda_tests"]["skipped"] >= 3 and by["cuda_tests"]["failed"] == 0  # no CUDA here: all skip
    assert by["train_step_mfu"]["value"] is None and by["train_step_mfu"]["tflops"] > 0  # no peak for a CPU
    assert (out / "bounds_e2e" / "bounds" / "bounds.json").exists()
    text = (out / "summary.md").read_text()
    assert "| item | value | unit | ratio | goal | status |" in text and all(f"| {n} |" in text for n in names)
    assert "Errors: none." in text and "Exit status: 0" in proc.stdout


def test_an_item_past_its_time_limit_is_an_error_and_the_suite_exits_one(tmp_path):
    out = tmp_path / "limit"
    proc = _suite("--smoke", "--only", "rademacher", "--out", str(out), env={"GPU_SUITE_LIMIT_RADEMACHER": "1"},
                  timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    (item,) = summary["items"]
    assert item["name"] == "rademacher_mc" and item["status"] == "error" and item["ok"] is False
    assert "timed out after 1 s" in item["error"] and "GPU_SUITE_LIMIT_RADEMACHER" in item["error"]
    assert summary["errors"] == ["rademacher_mc"]
    assert "Errors: rademacher_mc." in (out / "summary.md").read_text()


def test_usage_errors_exit_two(tmp_path):
    assert _suite("--only", "nope", "--out", str(tmp_path), timeout=120).returncode == 2
    assert _suite("--bogus", timeout=60).returncode == 2
    assert "--smoke" in _suite("--help", timeout=60).stdout


def test_a_missed_goal_is_not_an_error_but_a_crash_is(tmp_path):
    (tmp_path / "items").mkdir()
    missed = gpu_suite.item("dual_forward", 3.0, "ms per batch", 1.5, "<= 1.02")
    (tmp_path / "items" / "forward.json").write_text(json.dumps([missed]))
    (tmp_path / "items" / "forward.rc").write_text("0 40\n")
    assert missed["status"] == "missed" and missed["ok"] is False
    assert gpu_suite.summarize(tmp_path, "full", "cmd") == 0
    (tmp_path / "items" / "step.rc").write_text("1 75\n")  # crashed before writing anything
    assert gpu_suite.summarize(tmp_path, "full", "cmd") == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["errors"] == ["train_step", "train_step_mfu"] and summary["missed_goals"] == ["dual_forward"]
    assert summary["device"].startswith("unknown")  # no env.json: said so, still a summary
    text = (tmp_path / "summary.md").read_text()
    assert "Missed goals: dual_forward." in text and "exit 1 without a result" in text


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA GH200 480GB", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A100-PCIE-40GB", 312.0), ("NVIDIA A10", 125.0), ("NVIDIA A10G", None), ("NVIDIA L4", 121.0),
    ("NVIDIA L40S", 362.0), ("NVIDIA L40", 181.0), ("Tesla T4", None), ("cpu", None),
])
def test_peak_is_looked_up_by_device_name(name, peak):
    assert gpu_suite.peak_bf16_tflops(name) == peak


def test_goals_and_records():
    assert gpu_suite.goal_met(0.9, ">= 0.9") and not gpu_suite.goal_met(0.89, ">= 0.9")
    assert gpu_suite.goal_met(1.3, "<= 1.3") and not gpu_suite.goal_met(1.31, "<= 1.3")
    with pytest.raises(ValueError):
        gpu_suite.goal_met(1.0, "about 1")
    assert gpu_suite.item("x", float("nan"), "s")["value"] is None  # JSON has no NaN
    broken = gpu_suite.item("x", None, "s", 2.0, ">= 0.9", error="boom")
    assert broken["status"] == "error" and broken["ok"] is False


def test_cuda_tests_are_found_by_their_skip_marks():
    ids = gpu_suite.cuda_test_ids(ROOT / "tests")
    assert "tests/test_rademacher_device.py::test_mc_on_cuda_uses_the_cpu_draws_and_any_chunking" in ids
    assert "tests/test_cpu_precision_compile.py::test_training_steps_on_cuda_run_in_bf16_by_default" in ids
    assert not any("compiled_bf16" in i for i in ids)  # skipped for want of a compiler, not of CUDA
