"""Feature extraction (``scilt_theory.features.extract_features``): images/s and peak memory vs batch size, and
peak memory vs data set size at a fixed batch size.

Every configuration runs in a fresh process (``--worker``), so one measurement's freed-but-kept memory cannot
hide the next one's. Peak *working* memory is what extraction adds on top of what it cannot avoid holding:

* CPU: peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` after the set-up) minus the resident
  set before extraction (model and input images) minus the returned features (n x d float64 matrices), with
  glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave the resident set;
* CUDA: ``torch.cuda.max_memory_allocated`` during extraction minus the memory allocated before it (the input
  images stay on the host; each batch is copied over and its features copied back).

The streamed extractor holds one batch of activations at a time, so the working memory must depend on the batch
size only: the script reports the ratio of working memory at ``--scale`` x the images to that at 1 x (same
batch size), which should be about 1.

Run: ``python -m benchmarks.bench_extract [--batch-sizes 8 32 64] [--images N] [--smoke] [--append-results]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks._common import add_common_options, append_section, command_line, machine_line, resolve_device

SECTION = "Feature extraction: throughput and peak memory"
ROOT = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux >= 4.0: reset the peak resident set size (VmHWM) to the current one
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process: returns a JSON-able dictionary."""
    from scilt_theory.features import extract_features
    from scilt_theory.models import ModelConfig, build_model

    torch.set_num_threads(max(1, args.threads))
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=10, arch=args.arch, img_size=args.img_size,
                                    patch_size=args.patch_size, depth=args.depth, adapter="none"))
    model = model.to(device).eval()
    images = torch.rand(args.images, 3, args.img_size, args.img_size)
    labels = torch.randint(0, 10, (args.images,))
    warm = extract_features(model, images[:args.batch_size], labels[:args.batch_size], batch_size=args.batch_size,
                            device=device, progress=False)  # first-call allocations and kernel selection
    del warm
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    reset = _reset_peak_rss()
    base_rss = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    feats = extract_features(model, images, labels, batch_size=args.batch_size, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    out_bytes = sum(t.numel() * t.element_size() for t in (feats.phi_penult, feats.phi_final, feats.psi_penult,
                                                            feats.psi_final, feats.scores, feats.labels))
    peak_rss = _status_kib("VmHWM") * 1024
    result = {"images": args.images, "batch_size": args.batch_size, "seconds": seconds,
              "images_per_s": args.images / seconds, "rss_reset": reset,
              "cpu_working_bytes": peak_rss - base_rss - out_bytes, "output_bytes": out_bytes,
              "input_bytes": images.numel() * images.element_size()}
    if device.type == "cuda":
        result["cuda_working_bytes"] = torch.cuda.max_memory_allocated(device) - base
    return result


def _measure(args: argparse.Namespace, images: int, batch_size: int) -> dict:
    if args.in_process:
        return worker(argparse.Namespace(**{**vars(args), "images": images, "batch_size": batch_size}))
    cmd = [sys.executable, "-m", "benchmarks.bench_extract", "--worker", "--images", str(images),
           "--batch-size", str(batch_size), "--arch", args.arch, "--img-size", str(args.img_size),
           "--patch-size", str(args.patch_size), "--threads", str(args.threads), "--device", args.device]
    if args.depth is not None:
        cmd += ["--depth", str(args.depth)]
    # A fixed mmap threshold: glibc then maps every large tensor and unmaps it when freed, so the resident set
    # follows the live tensors. With its default (dynamic) threshold, freed activations stay in the heap and
    # the peak wanders by tens of MiB from run to run (measured: 78 vs 58 MiB for 32 vs 128 images; 73.4 vs
    # 73.4 with the fixed threshold).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_extract", description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="vit_small_patch16_224", help="timm ViT architecture")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--depth", type=int, default=None, help="number of blocks (default: the architecture's)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes to time (default 4 16 32 on CPU, 64 256 1024 on CUDA)")
    p.add_argument("--images", type=int, default=None, help="data set size (default 128 on CPU, 8192 on CUDA)")
    p.add_argument("--scale", type=int, default=4, help="the data set-size check uses scale x --images")
    p.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)   # worker
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--in-process", action="store_true",
                   help="measure in this process instead of a fresh one per row (faster; memory less clean)")
    add_common_options(p)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.smoke:
        args.arch, args.img_size, args.patch_size, args.depth = "vit_tiny_patch16_224", 32, 8, 2
        args.batch_sizes, args.images, args.scale = args.batch_sizes or [4, 8], args.images or 16, 2
        args.in_process = True
    device = resolve_device(args.device)
    sizes = args.batch_sizes or ([64, 256, 1024] if device.type == "cuda" else [4, 16, 32])
    n = args.images or (8192 if device.type == "cuda" else 128)
    rows = [_measure(args, n, b) for b in sizes]
    big_batch = sizes[len(sizes) // 2]
    small = next(r for r in rows if r["batch_size"] == big_batch)
    large = _measure(args, args.scale * n, big_batch)
    key = "cuda_working_bytes" if device.type == "cuda" else "cpu_working_bytes"
    mib = 2.0 ** 20
    lines = [f"| {r['images']} | {r['batch_size']} | {r['images_per_s']:.1f} | {r[key] / mib:.1f} "
             f"| {r['output_bytes'] / mib:.1f} |" for r in rows + [large]]
    ratio = large[key] / small[key] if small[key] > 0 else float("nan")
    table = ("| images | batch | images/s | peak working memory MiB | returned features MiB |\n"
             "| --- | --- | --- | --- | --- |\n" + "\n".join(lines))
    model = f"{args.arch} depth {args.depth or 'default'}, {args.img_size} px / patch {args.patch_size}"
    text = (f"{machine_line(device)}; {model}; each row a fresh process; "
            f"{'GPU memory (max_memory_allocated)' if device.type == 'cuda' else 'CPU resident set (VmHWM)'}"
            f"{' (in one process)' if args.in_process else ''}"
            f"{'' if device.type == 'cuda' or all(r['rss_reset'] for r in rows) else ' (peak reset unavailable)'}"
            f"\n\n{table}\n\nworking memory at {args.scale}x the images / at 1x (batch {big_batch}): "
            f"**{ratio:.2f}x** (goal: about 1, i.e. no growth with the data set size)")
    return {"rows": rows, "large": large, "memory_ratio": ratio, "text": text}


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return {}
    previous = torch.get_num_threads()
    try:
        result = run(args)
    finally:
        torch.set_num_threads(previous)  # in-process workers set it
    print(result["text"])
    if args.append_results:
        append_section(args.results_path, SECTION, command_line("benchmarks.bench_extract", argv), result["text"])
    return result


if __name__ == "__main__":
    main()
