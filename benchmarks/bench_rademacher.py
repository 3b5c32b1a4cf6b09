"""Timing of the Rademacher estimators of ``scilt_theory.rademacher`` (THEORY §5), as ratios measured in one run.

* MC: ``rademacher_linear(..., method="mc")`` for m draws on an n x d float32 matrix (row class, K = 1: one
  sign vector of length n per draw) against ONE bare matmul ``Psi^T @ S`` of the same shape (d x n times
  n x m) with ``S`` precomputed. The ratio MC / matmul is the point (goal <= 1.3 at n=50000, d=768, m=10000):
  it shows how much sign generation, norms and float64 moments add to the unavoidable matmul.
* exact enumeration at n = 20, 21, 22 (row class, K = 1);
* cvxpy: seconds per sign draw for the linear ball and for the coupled SciLT class (11-point alpha grid).

With ``--device cuda`` the MC rows run on the GPU (features and the precomputed S there; the estimator's sign
words come from the host generator, so its draws equal the CPU draws). ``--smoke``: tiny settings for CI.

Run: ``python -m benchmarks.bench_rademacher [--full] [--device cpu|cuda] [--smoke] [--append-results]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.rademacher import coupled_sup_cvxpy, linear_sup_cvxpy, rademacher_linear

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Rademacher estimators"


def _best_time(fn: Callable[[], Any], repeats: int, device: torch.device | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def bench_mc(n: int, d: int, m: int, repeats: int, seed: int = 0, device: str = "cpu") -> dict:
    """Best-of-``repeats`` seconds of the MC estimator and of one bare matmul of the same shape.

    The two are timed alternately so that a busy machine slows both alike.
    """
    gen = torch.Generator().manual_seed(seed)
    psi = torch.randn(n, d, generator=gen)
    psi = psi / psi.norm(dim=1, keepdim=True)
    signs = torch.empty(n, m).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)   # precomputed S (n x m)
    dev = torch.device(device)
    psi, signs = psi.to(dev), signs.to(dev)
    result: dict = {}

    def run() -> None:
        result["r"] = rademacher_linear(psi, 1.0, norm="row", method="mc", n_draws=m, seed=seed)

    t_matmul = t_mc = float("inf")
    for _ in range(repeats):
        t_matmul = min(t_matmul, _best_time(lambda: psi.T @ signs, 1, dev))
        t_mc = min(t_mc, _best_time(run, 1, dev))
    return {"kind": "mc", "device": dev.type, "n": n, "d": d, "m": m, "mc_s": t_mc, "matmul_s": t_matmul,
            "ratio": t_mc / t_matmul, "value": result["r"].value, "stderr": result["r"].stderr}


def bench_exact(n: int, d: int, repeats: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    psi = torch.randn(n, d, generator=gen, dtype=torch.float64)
    out = {}

    def run() -> None:
        out["r"] = rademacher_linear(psi, 1.0, norm="row", method="exact")

    return {"kind": "exact", "n": n, "d": d, "seconds": _best_time(run, repeats), "value": out["r"].value}


def bench_cvxpy(n: int, d: int, k: int, draws: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    psi1, psi2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    signs = rng.choice([-1.0, 1.0], size=(draws, n, k))
    linear_sup_cvxpy(psi1, signs[:1], 1.0, norm="row")                        # import and first compile
    start = time.perf_counter()
    linear_sup_cvxpy(psi1, signs, 1.0, norm="row")
    t_lin = (time.perf_counter() - start) / draws
    start = time.perf_counter()
    coupled_sup_cvxpy(psi1, psi2, signs, 1.0)
    t_cpl = (time.perf_counter() - start) / draws
    return [{"kind": "cvxpy linear row ball, per draw", "n": n, "d": d, "k": k, "seconds": t_lin},
            {"kind": "cvxpy coupled SciLT (11 alphas), per draw", "n": n, "d": d, "k": k, "seconds": t_cpl}]


def format_table(rows: Sequence[dict]) -> str:
    lines = ["| what | shape | seconds | bare matmul s | ratio |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["kind"] == "mc":
            where = " on " + r["device"] if r.get("device", "cpu") != "cpu" else ""
            lines.append(f"| MC{where}, row class K=1 (value {r['value']:.4g} ± {r['stderr']:.2g}) "
                         f"| n={r['n']}, d={r['d']}, m={r['m']} | {r['mc_s']:.3f} | {r['matmul_s']:.3f} "
                         f"| **{r['ratio']:.2f}x** |")
        elif r["kind"] == "exact":
            lines.append(f"| exact enumeration, row K=1 (2^{r['n'] - 1} patterns) | n={r['n']}, d={r['d']} "
                         f"| {r['seconds']:.3f} | | |")
        else:
            lines.append(f"| {r['kind']} | n={r['n']}, d={r['d']}, K={r['k']} | {r['seconds']:.4f} | | |")
    return "\n".join(lines)


def machine_line(device: str = "cpu") -> str:
    gpu = f"GPU {torch.cuda.get_device_name()}; " if device == "cuda" else ""
    return (f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {gpu}"
            f"os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()}; "
            f"torch {torch.__version__}; numpy {np.__version__}; "
            f"date {_dt.datetime.now().isoformat(timespec='seconds')}")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="samples of the default MC shape")
    parser.add_argument("--d", type=int, default=192, help="feature dimension of the default MC shape")
    parser.add_argument("--m", type=int, default=2000, help="MC draws of the default shape")
    parser.add_argument("--full", action="store_true", help="also n=50000, d=768, m=10000 (needs ~3 GB RAM)")
    parser.add_argument("--exact-n", type=int, nargs="*", default=[20, 21, 22], help="n of the exact timings")
    parser.add_argument("--cvxpy-draws", type=int, default=10, help="draws for the cvxpy per-draw timing (0: skip)")
    parser.add_argument("--cvxpy-shape", type=int, nargs=3, default=[200, 32, 5], metavar=("N", "D", "K"))
    parser.add_argument("--repeats", type=int, default=7, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPUs: keep it small)")
    parser.add_argument("--append-results", action="store_true", help=f"append the table to {RESULTS}")
    parser.add_argument("--results-path", type=Path, default=RESULTS, help="file --append-results writes to")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the MC rows run")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (CI smoke run; numbers meaningless)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.d, args.m, args.full, args.exact_n = 200, 16, 64, False, [8]
        args.cvxpy_draws, args.cvxpy_shape, args.repeats = 1, [10, 4, 2], 1
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict:
    rows = [bench_mc(args.n, args.d, args.m, args.repeats, device=args.device)]
    if args.full:
        rows.append(bench_mc(50_000, 768, 10_000, 2, device=args.device))
    rows += [bench_exact(n, args.d, args.repeats) for n in args.exact_n]
    if args.cvxpy_draws > 0:
        rows += bench_cvxpy(*args.cvxpy_shape, draws=args.cvxpy_draws)
    table = format_table(rows)
    text = machine_line(args.device) + "\n\n" + table
    print(text)
    if args.append_results:
        path = args.results_path
        header = "" if path.exists() else "# Benchmark results\n"
        with path.open("a") as fh:  # append only: other sections belong to other benchmarks
            fh.write(f"{header}\n{SECTION} (`python -m benchmarks.bench_rademacher"
                     f"{' --full' if args.full else ''}{' --device cuda' if args.device == 'cuda' else ''}"
                     f"{' --smoke' if args.smoke else ''}`)\n\n{text}\n")
    return {"rows": rows, "table": table}


if __name__ == "__main__":
    main()
