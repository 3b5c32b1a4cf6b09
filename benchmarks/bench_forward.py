"""Dual-feature forward of ``SciLTModel.features`` against a plain timm forward of the same backbone, as a ratio.

* timm: ``backbone((x - mean) / std)``: timm's own forward of the ViT (``num_classes=0``, CLS pooling), one
  feature (the final CLS after the final LayerNorm);
* SciLT: ``model.features(x)``: the same normalisation and backbone object, both CLS features (penultimate
  and final, THEORY §0) from one ``forward_intermediates`` pass.

Goal: ratio SciLT / timm <= 1.02 (a naive second pass for the penultimate feature would be about 2x). Both run
in inference mode, in bf16 autocast on CUDA (as evaluation does) and float32 on CPU.

Run: ``python -m benchmarks.bench_forward [--arch ...] [--batch-size B] [--smoke] [--append-results]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext

import torch

from benchmarks._common import (
    add_common_options,
    append_section,
    command_line,
    interleaved_medians,
    machine_line,
    resolve_device,
    set_threads,
)
from scilt_theory.models import ModelConfig, build_model

SECTION = "Dual-feature forward vs plain timm forward"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_forward", description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="vit_small_patch16_224", help="timm ViT architecture")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--depth", type=int, default=None, help="number of blocks (default: the architecture's)")
    p.add_argument("--adapter", default="none", choices=("none", "lora", "adaptformer", "full"),
                   help="adapter injected into the (shared) backbone")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward (default 8 on CPU, 256 on CUDA)")
    add_common_options(p)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.smoke:
        args.arch, args.img_size, args.patch_size, args.depth = "vit_tiny_patch16_224", 32, 8, 2
        args.batch_size, args.repeats, args.warmup = args.batch_size or 2, args.repeats or 2, 1
    device = resolve_device(args.device)
    batch = args.batch_size or (256 if device.type == "cuda" else 8)
    repeats = args.repeats or (30 if device.type == "cuda" else 15)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=10, arch=args.arch, img_size=args.img_size,
                                    patch_size=args.patch_size, depth=args.depth, adapter=args.adapter))
    model = model.to(device).eval()
    backbone = model.backbone
    x = torch.rand(batch, 3, args.img_size, args.img_size, device=device)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())

    def timm_forward() -> None:
        with torch.inference_mode(), amp:
            backbone((x - model.mean) / model.std)

    def scilt_features() -> None:
        with torch.inference_mode(), amp:
            model.features(x)

    with torch.inference_mode():  # both features of one pass: the final one is timm's pooled feature
        phi_penult, phi_final = model.features(x)
        same = torch.allclose(phi_final, backbone((x - model.mean) / model.std), atol=1e-4, rtol=1e-4)
    t = interleaved_medians({"timm": timm_forward, "scilt": scilt_features}, repeats=repeats, warmup=args.warmup,
                            device=device)
    ratio = t["scilt"]["median"] / t["timm"]["median"]
    depth = args.depth or len(backbone.blocks)
    row = (f"| {args.arch} depth {depth}, {args.img_size} px / patch {args.patch_size}, adapter {args.adapter} "
           f"| {device.type} | {batch} | {t['timm']['median'] * 1e3:.1f} | {t['scilt']['median'] * 1e3:.1f} "
           f"| {batch / t['scilt']['median']:.1f} | **{ratio:.3f}x** |")
    table = ("| model | device | batch | timm forward ms (median) | SciLT features ms (median) | SciLT images/s "
             "| ratio SciLT / timm (goal <= 1.02) |\n| --- | --- | --- | --- | --- | --- | --- |\n" + row)
    text = (f"{machine_line(device)}; {repeats} interleaved repeats, medians; final CLS feature equal to timm's: "
            f"{same}\n\n{table}")
    return {"ratio": ratio, "timings": t, "final_feature_matches_timm": same, "text": text}


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    previous = set_threads(args.threads)
    try:
        result = run(args)
    finally:
        torch.set_num_threads(previous)
    print(result["text"])
    if args.append_results:
        append_section(args.results_path, SECTION, command_line("benchmarks.bench_forward", argv), result["text"])
    return result


if __name__ == "__main__":
    main()
