"""The GPU readiness suite: every CUDA path of the toolkit, timed against its plain baseline, in one call.

``bash benchmarks/gpu_suite.sh [--smoke] [--out DIR]`` is the entry point: it runs each task of :data:`TASKS` as
``python -m benchmarks.gpu_suite task NAME`` under its own time limit (``timeout``), then
``python -m benchmarks.gpu_suite summarize`` writes ``DIR/summary.json`` and ``DIR/summary.md``. A task that
fails, crashes or runs out of time is recorded as an error and the suite goes on with the next one.

Items (``summary.json["items"]``: ``name``, ``value``, ``unit``, ``ratio``, ``goal``, ``ok``, plus ``status``,
``error``, ``detail``, ``seconds``):

* ``cuda_tests``: the tests that skip without CUDA (found by their ``skipif(... cuda ...)`` marks), passed/skipped;
* ``bounds_e2e``: ``python -m experiments.train`` on a tiny checkpoint, then ``python -m experiments.bounds
  --ckpt`` on it (diagnostic; in full mode also certified), on the suite's device;
* ``train_step`` / ``train_step_compiled``: one SciLT training step against a plain timm step of the same ViT
  (ViT-B/16 at 224 px, K = 1000, all weights trained, bf16 autocast, same batch, same optimiser), without and with
  ``torch.compile``: SciLT images/s, ratio = SciLT / timm throughput (goal >= 0.9);
* ``train_step_mfu`` / ``train_step_compiled_mfu``: model-FLOPs utilisation of the SciLT step: FLOPs of one step
  counted by ``torch.utils.flop_counter.FlopCounterMode``, over the step time, over the dense bf16 peak of the
  device looked up by name in :data:`PEAK_BF16_TFLOPS` (no value when the device is not in the table);
* ``dual_forward``: ``SciLTModel.features`` (both CLS features from one pass) against timm's plain forward
  (``benchmarks/bench_forward.py``), ratio of times (goal <= 1.02);
* ``rademacher_mc``: the Monte Carlo complexity of the row class (``rademacher_linear``, what the bounds use) at
  ImageNet-LT scale, n = 115,846 features of d = 768, K = 1000, 10,000 draws, on the device, against one bare GEMM
  of the same shape (draws x n times n x d), ratio of times (goal <= 1.3).

``ok`` is true when the item ran without error and met its goal (or has none); ``status`` says which: ``met``,
``missed`` (ran, missed its goal: not an error), ``ran`` (no goal), ``error``. The exit status of ``summarize``
(and of the suite) is 1 when any item errored, 0 otherwise, whatever the goals. ``--smoke``: tiny sizes, on CPU
unless ``--device`` says otherwise; the numbers then mean nothing, only that every item runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Tasks in the order the suite runs them (the ones a first GPU run must not crash in first), with their time
#: limits in seconds (full, smoke) and the items each one writes. The full limits add up to 565 s, so that one
#: call of the suite fits a 10-minute command; ``GPU_SUITE_LIMIT_<TASK>`` (upper case) overrides one.
TASKS: dict[str, dict[str, Any]] = {
    "cuda_tests": {"limits": (60, 120), "items": ("cuda_tests",)},
    "bounds_e2e": {"limits": (120, 150), "items": ("bounds_e2e",)},
    "step": {"limits": (75, 120), "items": ("train_step", "train_step_mfu")},
    "forward": {"limits": (40, 60), "items": ("dual_forward",)},
    "rademacher": {"limits": (60, 60), "items": ("rademacher_mc",)},
    "step_compiled": {"limits": (210, 300), "items": ("train_step_compiled", "train_step_compiled_mfu")},
}

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, matched in this order
#: against ``torch.cuda.get_device_name()``; None: a known name whose peak is not listed (e.g. A10G vs A10).
PEAK_BF16_TFLOPS: tuple[tuple[str, float | None], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),  # plain "H100 80GB HBM3" is the SXM part
    ("H200", 989.0),  # H200 SXM / NVL and GH200 share the H100 SXM tensor cores
    ("B200", 2250.0), ("A100", 312.0), ("A10G", None), ("A10", 125.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
)

#: Sizes of the timed items: the GPU settings of the issue, and tiny ones for --smoke.
SIZES = {
    "full": {
        "step": dict(arch="vit_base_patch16_224", img_size=224, patch_size=16, depth=None, num_classes=1000,
                     batch_cuda=128, batch_cpu=8, warmup=3, repeats=20),
        "forward": ["--arch", "vit_base_patch16_224", "--img-size", "224", "--patch-size", "16"],
        "rademacher": dict(n=115_846, d=768, k=1000, draws=10_000, repeats=3),
    },
    "smoke": {
        "step": dict(arch="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10,
                     batch_cuda=4, batch_cpu=4, warmup=1, repeats=2),
        "forward": ["--smoke"],
        "rademacher": dict(n=4000, d=64, k=10, draws=512, repeats=2),
    },
}

#: The tiny checkpoint of bounds_e2e (experiments.train options; --device and --out are added).
TRAIN_ARGS = {
    "smoke": ["--dataset", "synthetic-lt", "--imbalance", "10", "--max-per-class", "60", "--test-per-class", "10",
              "--num-classes", "4", "--img-size", "16", "--patch-size", "4", "--depth", "2", "--adapter", "full",
              "--epochs", "1", "--batch-size", "16", "--optimizer", "adamw", "--lr", "2e-3", "--warmup-epochs", "0",
              "--holdout-fraction", "0.3", "--num-workers", "0", "--quiet"],
    "full": ["--dataset", "synthetic-lt", "--imbalance", "10", "--max-per-class", "120", "--test-per-class", "20",
             "--num-classes", "6", "--img-size", "32", "--patch-size", "4", "--depth", "4", "--adapter", "adaptformer",
             "--epochs", "2", "--batch-size", "32", "--optimizer", "adamw", "--lr", "2e-3", "--warmup-epochs", "0",
             "--holdout-fraction", "0.3", "--num-workers", "2", "--quiet"],
}
#: experiments.bounds options: the full run also writes the plots (the certified pass does not).
BOUNDS_ARGS = {"smoke": ["--draws", "200", "--no-plots", "--quiet"], "full": ["--quiet"]}

GOAL_RE = re.compile(r"^\s*(>=|<=)\s*([0-9.]+)\s*$")


# ---- item records ------------------------------------------------------------------------------------------
def item(name: str, value: float | None, unit: str, ratio: float | None = None, goal: str | None = None, *,
         detail: str = "", error: str | None = None, seconds: float | None = None, **extra: Any) -> dict:
    """One summary item; ``ok`` and ``status`` follow from ``error``, ``ratio`` and ``goal`` (see the module)."""
    if error is not None:
        status = "error"
    elif goal is None:
        status = "ran"
    else:
        status = "met" if ratio is not None and goal_met(ratio, goal) else "missed"
    return {"name": name, "value": _finite_or_none(value), "unit": unit, "ratio": _finite_or_none(ratio),
            "goal": goal, "ok": status in ("met", "ran"), "status": status, "error": error, "detail": detail,
            "seconds": None if seconds is None else round(seconds, 2), **extra}


def goal_met(ratio: float, goal: str) -> bool:
    """``ratio`` against a goal written ``">= 0.9"`` or ``"<= 1.3"``."""
    match = GOAL_RE.match(goal)
    if match is None:
        raise ValueError(f"goal must read '>= x' or '<= x', got {goal!r}")
    bound = float(match.group(2))
    return ratio >= bound if match.group(1) == ">=" else ratio <= bound


def _finite_or_none(x: float | None) -> float | None:
    if x is None or (isinstance(x, int) and not isinstance(x, bool)):
        return x
    x = float(x)
    return x if math.isfinite(x) else None


def peak_bf16_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``device_name`` (first entry of PEAK_BF16_TFLOPS it contains)."""
    lowered = device_name.lower()
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in lowered:
            return peak
    return None


# ---- environment -------------------------------------------------------------------------------------------
def _driver_version() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if out.returncode == 0 and lines else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device_name: str) -> dict:
    """``device``, ``torch``, ``cuda``, ``driver`` (None without nvidia-smi), ``date`` and the machine."""
    import torch

    device = resolve(device_name)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        props = torch.cuda.get_device_properties(device)
        described = f"{name} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    else:
        name = described = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    peak = peak_bf16_tflops(name) if device.type == "cuda" else None
    return {"device": described, "device_type": device.type, "device_name": name, "torch": torch.__version__,
            "cuda": torch.version.cuda, "driver": _driver_version(),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "peak_bf16_tflops": peak, "peak_source": "PEAK_BF16_TFLOPS" if peak else "unknown",
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "commit": _git_commit()}


def resolve(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no CUDA device")
    return torch.device(name)


# ---- tasks -------------------------------------------------------------------------------------------------
def task_cuda_tests(mode: str, device: str, out: Path) -> list[dict]:
    """Run the CUDA-only tests (those marked skipif without CUDA); value = passed, with skipped and failed."""
    import xml.etree.ElementTree as ET

    ids = cuda_test_ids(ROOT / "tests")
    if not ids:
        return [item("cuda_tests", 0, "tests passed", error="no test marked skipif(... cuda ...) was found")]
    junit = out / "logs" / "cuda_tests.xml"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           f"--junitxml={junit}", *ids], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (out / "logs" / "cuda_tests.pytest.log").write_text(proc.stdout + proc.stderr)
    if not junit.exists():
        return [item("cuda_tests", None, "tests passed", error=f"pytest exit {proc.returncode} without a report: "
                     f"{_tail(proc.stdout + proc.stderr)}", seconds=seconds)]
    suites = ET.parse(junit).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = count["failures"] + count["errors"]
    passed = count["tests"] - failed - count["skipped"]
    detail = f"{passed} passed, {count['skipped']} skipped, {failed} failed of {count['tests']}: {' '.join(ids)}"
    on_cuda = resolve(device).type == "cuda"
    error = None
    if failed or proc.returncode not in (0, 5):
        error = f"{failed} failed (pytest exit {proc.returncode}); see logs/cuda_tests.pytest.log"
    elif on_cuda and count["skipped"]:
        error = f"{count['skipped']} CUDA test(s) skipped on a CUDA device; see logs/cuda_tests.pytest.log"
    return [item("cuda_tests", passed, "tests passed", detail=detail, error=error, seconds=seconds,
                 skipped=count["skipped"], failed=failed)]


_SKIPIF_CUDA = re.compile(r"skipif\([^)]*cuda", re.IGNORECASE)


def cuda_test_ids(tests: Path) -> list[str]:
    """pytest node ids of the tests that skip without CUDA: a ``skipif(... cuda ...)`` mark on a test function
    (the next ``def test_`` below it) or on a whole module (``pytestmark = ...``)."""
    ids: list[str] = []
    for path in sorted(tests.glob("test_*.py")):
        lines = path.read_text().splitlines()
        rel = path.relative_to(tests.parent).as_posix()
        for i, line in enumerate(lines):
            if not _SKIPIF_CUDA.search(line):
                continue
            if line.lstrip().startswith("pytestmark"):
                ids.append(rel)
                break
            for later in lines[i + 1:]:
                match = re.match(r"\s*def (test_\w+)", later)
                if match:
                    ids.append(f"{rel}::{match.group(1)}")
                    break
    return list(dict.fromkeys(ids))


def task_bounds_e2e(mode: str, device: str, out: Path) -> list[dict]:
    """Train a tiny checkpoint with experiments.train, then run experiments.bounds on it."""
    work = out / "bounds_e2e"
    shutil.rmtree(work, ignore_errors=True)
    dev = resolve(device).type
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    commands = [("train", [sys.executable, "-m", "experiments.train", *TRAIN_ARGS[mode], "--device", dev,
                           "--out", str(work / "run")])]
    ckpt = work / "run" / "run.pt"
    commands.append(("bounds", [sys.executable, "-m", "experiments.bounds", "--ckpt", str(ckpt), "--device", dev,
                                "--out", str(work / "bounds"), *BOUNDS_ARGS[mode]]))
    if mode == "full":
        commands.append(("certified", [sys.executable, "-m", "experiments.bounds", "--ckpt", str(ckpt), "--device",
                                       dev, "--mode", "certified", "--out", str(work / "bounds_certified"),
                                       "--no-plots", *BOUNDS_ARGS[mode]]))
    seconds: dict[str, float] = {}
    for label, cmd in commands:
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        seconds[label] = time.perf_counter() - started
        (out / "logs" / f"bounds_e2e.{label}.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        if proc.returncode != 0:
            return [item("bounds_e2e", None, "s", error=f"{label} exit {proc.returncode}: "
                         f"{_tail(proc.stderr or proc.stdout)}", seconds=sum(seconds.values()))]
    report = json.loads((work / "bounds" / "bounds.json").read_text())
    bound = report["overall"]["bound"]
    if not (isinstance(bound, (int, float)) and math.isfinite(bound)):
        return [item("bounds_e2e", seconds["bounds"], "s", error=f"Theorem 5.3 bound is {bound!r}")]
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    detail = (f"train {seconds['train']:.1f} s (balanced acc. {100 * metrics['balanced_accuracy']:.1f} %), bounds "
              f"{seconds['bounds']:.1f} s (n={report['n']}, Thm 5.3 {bound:.3g})")
    if "certified" in seconds:
        certified = json.loads((work / "bounds_certified" / "bounds.json").read_text())
        detail += f", certified {seconds['certified']:.1f} s (Thm 5.3 {certified['overall']['bound']:.3g})"
    return [item("bounds_e2e", seconds["bounds"], "s", detail=detail + f"; on {dev}", seconds=sum(seconds.values()))]


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:]


def task_step(mode: str, device: str, out: Path, *, compiled: bool = False) -> list[dict]:
    """SciLT training step vs a plain timm step (same ViT, adapter full, bf16 autocast, same batch), with MFU."""
    import torch
    import torch.nn.functional as F

    from benchmarks._common import interleaved_medians
    from benchmarks.bench_step import step_flops
    from scilt_theory import distributed
    from scilt_theory.models import ModelConfig, build_model
    from scilt_theory.training import TrainConfig, autocast_for, make_optimizer, scilt_loss, training_device

    size = SIZES[mode]["step"]
    dev = training_device(device, distributed.current())  # TF32 matmuls on CUDA, as training
    batch = size["batch_cuda"] if dev.type == "cuda" else size["batch_cpu"]
    k = size["num_classes"]
    cfg = ModelConfig(num_classes=k, arch=size["arch"], img_size=size["img_size"], patch_size=size["patch_size"],
                      depth=size["depth"], adapter="full")
    torch.manual_seed(0)
    scilt = build_model(cfg).to(dev).train()
    torch.manual_seed(0)
    plain = plain_timm(cfg).to(dev).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, cfg.img_size, cfg.img_size, generator=gen).to(dev)
    y = torch.randint(0, k, (batch,), generator=gen).to(dev)
    counts = torch.logspace(3, 1, k).to(dev)  # a long-tailed prior for the logit adjustment
    train_cfg = TrainConfig(lr=1e-4)

    def make_step(module: torch.nn.Module, loss_fn: Callable) -> tuple[Callable[[], None], Callable[[], None]]:
        optimizer = make_optimizer([p for p in module.parameters() if p.requires_grad], train_cfg, dev)
        forward = torch.compile(module) if compiled else module

        def run(net: Callable) -> Callable[[], None]:
            def step() -> None:
                with autocast_for("bf16", dev):
                    out = net(x)
                loss = loss_fn(out)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return step
        return run(module), run(forward)

    eager_scilt, step_scilt = make_step(scilt, lambda out: scilt_loss(out, y, counts, train_cfg))
    eager_plain, step_plain = make_step(plain, lambda logits: F.cross_entropy(logits.float(), y))
    flops = step_flops(eager_scilt)  # counted on the eager module: FlopCounterMode does not see into compiled code
    plain_flops = step_flops(eager_plain)
    t = interleaved_medians({"scilt": step_scilt, "timm": step_plain}, repeats=size["repeats"],
                            warmup=size["warmup"], device=dev)
    scilt_s, plain_s = t["scilt"]["median"], t["timm"]["median"]
    name = "train_step_compiled" if compiled else "train_step"
    shape = (f"{cfg.arch} depth {len(scilt.backbone.blocks)}, {cfg.img_size} px, K={k}, batch {batch}, bf16 autocast"
             f"{', torch.compile' if compiled else ''}, on {dev.type}")
    detail = (f"{shape}; step ms (median of {size['repeats']}): SciLT {1e3 * scilt_s:.1f}, timm {1e3 * plain_s:.1f}; "
              f"timm {batch / plain_s:.1f} images/s")
    peak = peak_bf16_tflops(torch.cuda.get_device_name(dev)) if dev.type == "cuda" else None
    achieved = flops / scilt_s / 1e12
    mfu = None if peak is None else 100.0 * achieved / peak
    mfu_detail = (f"{flops / 1e9:.2f} GFLOP per SciLT step (timm {plain_flops / 1e9:.2f}) counted, "
                  f"{achieved:.3g} TFLOP/s achieved; peak "
                  + (f"{peak:g} TFLOP/s bf16 dense ({torch.cuda.get_device_name(dev)})" if peak else
                     f"unknown for this device ({'cpu' if dev.type == 'cpu' else torch.cuda.get_device_name(dev)})"))
    return [item(name, batch / scilt_s, "images/s", plain_s / scilt_s, ">= 0.9", detail=detail),
            item(f"{name}_mfu", mfu, "% of bf16 peak", detail=mfu_detail, tflops=achieved, flops=flops)]


def plain_timm(config):
    """timm's own ViT with its own linear classifier (``reset_classifier(K)``), normalising its input as SciLTModel
    does: the baseline of the training-step items (built here so that torch is imported only inside tasks)."""
    import torch
    from torch import nn

    from scilt_theory.models.adapters import apply_adapter
    from scilt_theory.models.backbone import create_backbone, input_normalization

    class PlainTimm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = create_backbone(config)
            apply_adapter(self.backbone, config)
            self.backbone.reset_classifier(config.num_classes)  # after the adapter: the new head trains
            mean, std = input_normalization(self.backbone)
            self.register_buffer("mean", mean, persistent=False)
            self.register_buffer("std", std, persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.backbone((x - self.mean) / self.std)

    return PlainTimm()


def task_forward(mode: str, device: str, out: Path) -> list[dict]:
    """benchmarks.bench_forward: SciLT's dual-feature forward vs timm's plain forward, ratio of times."""
    from benchmarks import bench_forward

    dev = resolve(device).type
    result = bench_forward.main([*SIZES[mode]["forward"], "--device", dev])
    t = result["timings"]
    ms = 1e3 * t["scilt"]["median"]
    first = result["text"].split("\n\n")[-1].splitlines()[-1]  # the table row: model, device, batch, ...
    detail = (f"{first.strip('| ').split(' | ')[0]}, on {dev}; ms per batch: SciLT {ms:.2f}, timm "
              f"{1e3 * t['timm']['median']:.2f}; final feature equal to timm's: {result['final_feature_matches_timm']}")
    error = None if result["final_feature_matches_timm"] else "SciLT's final CLS feature differs from timm's"
    return [item("dual_forward", ms, "ms per batch", result["ratio"], "<= 1.02", detail=detail, error=error)]


def task_rademacher(mode: str, device: str, out: Path) -> list[dict]:
    """The MC complexity of the row class on the device vs one bare GEMM of the same shape (best of repeats)."""
    import torch

    from benchmarks._common import synchronize
    from scilt_theory.rademacher import rademacher_linear

    size = SIZES[mode]["rademacher"]
    dev = resolve(device)
    n, d, k, m = size["n"], size["d"], size["k"], size["draws"]
    gen = torch.Generator(device=dev).manual_seed(0)
    psi = torch.randn(n, d, generator=gen, device=dev)
    psi = psi / psi.norm(dim=1, keepdim=True)
    signs = torch.empty(m, n, device=dev).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)  # precomputed S (m x n)
    result: dict = {}

    def gemm() -> None:
        result["gemm"] = signs @ psi

    def mc() -> None:
        result["mc"] = rademacher_linear(psi, 1.0, num_outputs=k, norm="row", method="mc", n_draws=m, seed=0)

    best = {"gemm": float("inf"), "mc": float("inf")}
    for _ in range(size["repeats"]):  # alternately, so that a busy machine slows both alike
        for name, fn in (("gemm", gemm), ("mc", mc)):
            synchronize(dev)
            started = time.perf_counter()
            fn()
            synchronize(dev)
            best[name] = min(best[name], time.perf_counter() - started)
    r = result["mc"]
    detail = (f"n={n}, d={d}, K={k}, {m} draws, float32 on {dev.type}; MC {best['mc']:.3f} s, GEMM "
              f"({m} x {n}) @ ({n} x {d}) {best['gemm']:.3f} s (best of {size['repeats']}); R = {r.value:.4g} "
              f"± {r.stderr:.2g}, certified upper {r.upper:.4g}")
    return [item("rademacher_mc", best["mc"], "s", best["mc"] / best["gemm"], "<= 1.3", detail=detail)]


TASK_FUNCTIONS: dict[str, Callable[[str, str, Path], list[dict]]] = {
    "cuda_tests": task_cuda_tests,
    "bounds_e2e": task_bounds_e2e,
    "step": task_step,
    "forward": task_forward,
    "rademacher": task_rademacher,
    "step_compiled": lambda mode, device, out: task_step(mode, device, out, compiled=True),
}


def run_task(name: str, mode: str, device: str, out: Path) -> int:
    """Run one task and write ``out/items/NAME.json``; an exception becomes an error item (exit status 1)."""
    (out / "items").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    threads = int(os.environ.get("GPU_SUITE_THREADS", "0")) or None
    if threads:
        import torch

        torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        records = TASK_FUNCTIONS[name](mode, device, out)
        status = 0
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record; the suite goes on
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".strip()
        records = [item(n, None, "", error=message[-800:]) for n in TASKS[name]["items"]]
        status = 1
    seconds = time.perf_counter() - started
    for record in records:
        record["seconds"] = record["seconds"] if record.get("seconds") is not None else round(seconds, 2)
    path = out / "items" / f"{name}.json"
    path.write_text(json.dumps(records, indent=2) + "\n")
    for record in records:
        print(f"{record['name']}: {record['status']} value={record['value']} {record['unit']} "
              f"ratio={record['ratio']} goal={record['goal']} {record['error'] or record['detail']}")
    return status


# ---- summary -----------------------------------------------------------------------------------------------
def collect(out: Path) -> list[dict]:
    """Every task's items in TASKS order; a task that ran but wrote nothing (killed at its time limit, crashed)
    gives error items named after what it would have written; a task not run is left out."""
    items: list[dict] = []
    for name, spec in TASKS.items():
        path, rc_path = out / "items" / f"{name}.json", out / "items" / f"{name}.rc"
        rc, limit = _read_rc(rc_path)
        records = json.loads(path.read_text()) if path.exists() else None
        if records is None:
            if rc is None:
                continue  # not run (--only, or the suite is still running)
            why = (f"timed out after {limit} s (exit {rc}); raise GPU_SUITE_LIMIT_{name.upper()}"
                   if rc in (124, 137) else f"exit {rc} without a result")
            records = [item(n, None, "", error=f"{why}; see logs/{name}.log") for n in spec["items"]]
        elif rc not in (None, 0) and not any(r["status"] == "error" for r in records):
            for r in records:  # a result written, then a crash or kill
                r.update(ok=False, status="error", error=f"task exit {rc} after writing its result; see "
                                                          f"logs/{name}.log")
        items.extend(records)
    return items


def _read_rc(path: Path) -> tuple[int | None, int | None]:
    if not path.exists():
        return None, None
    parts = path.read_text().split()
    return int(parts[0]), (int(parts[1]) if len(parts) > 1 else None)


def summarize(out: Path, mode: str, command: str) -> int:
    env_path = out / "env.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {"device": "unknown (env task failed)",
                                                                      "torch": None, "driver": None,
                                                                      "date": _dt.datetime.now().isoformat()}
    items = collect(out)
    summary = {**{k: env.get(k) for k in ("device", "torch", "driver", "date")}, "mode": mode, "command": command,
               "environment": env, "items": items,
               "errors": [i["name"] for i in items if i["status"] == "error"],
               "missed_goals": [i["name"] for i in items if i["status"] == "missed"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    return 1 if summary["errors"] else 0


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def summary_markdown(summary: dict) -> str:
    env = summary["environment"]
    mode = summary["mode"]
    lines = [f"GPU suite, {'smoke (tiny sizes)' if mode == 'smoke' else 'full'} run (`{summary['command']}`): "
             f"device {env.get('device')}, torch {env.get('torch')} (CUDA build {env.get('cuda')}), driver "
             f"{env.get('driver') or 'none'}, commit {env.get('commit')}, date {env.get('date')}.", "",
             "| item | value | unit | ratio | goal | status | seconds | detail |",
             "| --- | ---: | --- | ---: | --- | --- | ---: | --- |"]
    for i in summary["items"]:
        note = i["error"] if i["status"] == "error" else i["detail"]
        note = str(note).replace("|", "/").replace("\n", " ")
        ratio = "–" if i["ratio"] is None else f"{i['ratio']:.3f}"
        lines.append(f"| {i['name']} | {_fmt(i['value'], 4)} | {i['unit']} | {ratio} | {i['goal'] or '–'} "
                     f"| {i['status']} | {_fmt(i['seconds'], 4)} | {note} |")
    errors, missed = summary["errors"], summary["missed_goals"]
    lines += ["", "Status: met = ran and met its goal; missed = ran and missed its goal (not an error); ran = has no "
                  "goal; error = failed (see the detail and logs/). Ratios: train_step* = SciLT / timm throughput; "
                  "dual_forward and rademacher_mc = SciLT / baseline time."]
    if mode == "smoke":
        lines.append("Smoke run: the goals are judged but mean nothing at these sizes; what it checks is that every "
                     "item runs.")
    lines.append(f"Errors: {', '.join(errors) if errors else 'none'}. Missed goals: "
                 f"{', '.join(missed) if missed else 'none'}. Exit status: {1 if errors else 0} "
                 f"({'an item errored' if errors else 'no item errored'}).")
    return "\n".join(lines) + "\n"


# ---- command line ------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("list", "env", "task", "summarize"),
                        help="list: task names and time limits; env: write OUT/env.json; task NAME: run one task; "
                             "summarize: write OUT/summary.json and summary.md (exit 1 if an item errored)")
    parser.add_argument("name", nargs="?", help="the task of 'task'")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu"), help="output directory")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (default device cpu)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="where the items run (default: auto, or cpu with --smoke)")
    parser.add_argument("--command", default="bash benchmarks/gpu_suite.sh", help="the command shown in summary.md")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    device = args.device or ("cpu" if args.smoke else "auto")
    if args.action == "list":
        for name, spec in TASKS.items():
            limit = spec["limits"][1 if args.smoke else 0]
            print(name, os.environ.get(f"GPU_SUITE_LIMIT_{name.upper()}", limit))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.action == "env":
        (args.out / "env.json").write_text(json.dumps(environment(device), indent=2) + "\n")
        return 0
    if args.action == "task":
        if args.name not in TASKS:
            parser.error(f"task must be one of {', '.join(TASKS)}, got {args.name!r}")
        return run_task(args.name, mode, device, args.out)
    return summarize(args.out, mode, args.command)


if __name__ == "__main__":
    sys.exit(main())
