"""Shared plumbing of the benchmark scripts: interleaved timing with medians, the machine line, RESULTS.md sections.

Timings are ratios measured in one run: the variants are timed in turn within every repeat (their order rotates
from repeat to repeat), so a machine that slows down for a while slows all of them alike, and the median over
repeats is reported. On CUDA every timed call ends with ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def add_common_options(parser: argparse.ArgumentParser, *, threads: int = 2) -> None:
    """--smoke, --repeats, --warmup, --threads, --device, --append-results, --results-path."""
    parser.add_argument("--smoke", action="store_true", help="tiny CI-sized settings (seconds); numbers are not "
                                                             "meaningful")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timed repeats (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls of every variant first")
    parser.add_argument("--threads", type=int, default=threads, help="torch CPU threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = CUDA when present")
    parser.add_argument("--append-results", action="store_true", help=f"append a section to {RESULTS}")
    parser.add_argument("--results-path", type=Path, default=RESULTS, help="file --append-results writes to")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(variants: Mapping[str, Callable[[], Any]], *, repeats: int, warmup: int,
                        device: torch.device) -> dict[str, dict[str, float]]:
    """Seconds per call of each variant: ``{"median", "min", "max"}`` over ``repeats`` interleaved rounds."""
    names = list(variants)
    for _ in range(max(0, warmup)):
        for name in names:
            variants[name]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(1, repeats)):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            variants[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(t), "min": min(t), "max": max(t)} for name, t in times.items()}


def machine_line(device: torch.device) -> str:
    """Machine, library versions, device and date, for RESULTS.md."""
    import timm

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:  # pragma: no cover - peft is a dependency
        peft_version = "absent"
    gpu = (f"GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), "
           if device.type == "cuda" else "no GPU (CPU run), ")
    return (f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()}; {gpu}"
            f"torch {torch.__version__}, timm {timm.__version__}, peft {peft_version}; "
            f"date {_dt.datetime.now().isoformat(timespec='seconds')}")


def append_section(path: Path, title: str, command: str, text: str) -> None:
    """Append ``## title (`command`)`` and ``text`` to ``path`` (created with a header when missing)."""
    header = "" if path.exists() else "# Benchmark results\n"
    with path.open("a") as fh:  # append only: other sections belong to other benchmarks
        fh.write(f"{header}\n## {title} (`{command}`)\n\n{text}\n")


def command_line(module: str, argv: list[str]) -> str:
    shown = [a for a in argv if a not in ("--append-results",)]
    skip_next = False
    kept = []
    for a in shown:  # the results path is where the text went, not how it was measured
        if skip_next:
            skip_next = False
            continue
        if a == "--results-path":
            skip_next = True
            continue
        kept.append(a)
    return " ".join(["python -m", module, *kept])


def set_threads(threads: int) -> int:
    """Set torch's CPU threads; return the previous count (to restore)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    return previous
