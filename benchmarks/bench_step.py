"""SciLT training step against a final-only (LIFT-style) step with the same backbone and adapter, as a ratio.

* final-only (LIFT-style, built here): the same timm ViT + the same adapter (``apply_adapter``) + ONE bias-free
  cosine head on the final CLS feature (timm's own forward, ``num_classes=0``), logit-adjusted CE;
* SciLT: ``SciLTModel`` (both CLS features from one pass, adaptive fusion, two cosine heads) with the dual
  logit-adjusted loss of ``scilt_theory.training.scilt_loss``.

Both steps are what ``scilt_theory.training.train`` does per batch: bf16 autocast and TF32 on CUDA, zero_grad,
backward, SGD step (fused on CUDA). Goal: ratio SciLT / final-only <= 1.05 (throughput >= 0.95x). On CUDA the
model FLOPs utilisation (FLOPs of one step counted by ``torch.utils.flop_counter`` / time / peak bf16 FLOP/s)
is reported too.

Run: ``python -m benchmarks.bench_step [--arch ...] [--adapter ...] [--smoke] [--append-results]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._common import (
    add_common_options,
    append_section,
    command_line,
    interleaved_medians,
    machine_line,
    resolve_device,
    set_threads,
)
from scilt_theory.losses import logit_adjusted_cross_entropy
from scilt_theory.models import ModelConfig, build_model
from scilt_theory.models.adapters import apply_adapter
from scilt_theory.models.backbone import create_backbone, input_normalization
from scilt_theory.models.heads import BiasFreeHead
from scilt_theory.training import TrainConfig, make_optimizer, scilt_loss

SECTION = "SciLT training step vs final-only (LIFT-style) step"
#: Dense bf16 peak of known GPUs in TFLOP/s (vendor data sheets, SXM parts); --peak-tflops overrides.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


class FinalOnlyModel(nn.Module):
    """LIFT-style baseline: timm ViT + adapter + one cosine head on the final CLS feature."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = create_backbone(config)
        apply_adapter(self.backbone, config)
        mean, std = input_normalization(self.backbone)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.head = BiasFreeHead(int(self.backbone.embed_dim), config.num_classes, True, config.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.backbone((x - self.mean) / self.std), dim=-1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_step", description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="vit_small_patch16_224", help="timm ViT architecture")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--depth", type=int, default=None, help="number of blocks (default: the architecture's)")
    p.add_argument("--adapter", default="adaptformer", choices=("lora", "adaptformer", "full", "none"),
                   help="the adapter both models train (default adaptformer, as LIFT)")
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default 8 on CPU, 128 on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak bf16 TFLOP/s of the GPU for the MFU (default: looked up from the device name)")
    add_common_options(p)
    return p


def step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one training step (forward + backward matmuls/convolutions) counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def run(args: argparse.Namespace) -> dict:
    if args.smoke:
        args.arch, args.img_size, args.patch_size, args.depth = "vit_tiny_patch16_224", 32, 8, 2
        args.num_classes = 10
        args.batch_size, args.repeats, args.warmup = args.batch_size or 4, args.repeats or 2, 1
    device = resolve_device(args.device)
    batch = args.batch_size or (128 if device.type == "cuda" else 8)
    repeats = args.repeats or (30 if device.type == "cuda" else 8)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    k = args.num_classes
    cfg = ModelConfig(num_classes=k, arch=args.arch, img_size=args.img_size, patch_size=args.patch_size,
                      depth=args.depth, adapter=args.adapter)
    torch.manual_seed(0)
    scilt = build_model(cfg).to(device).train()
    torch.manual_seed(0)
    final_only = FinalOnlyModel(cfg).to(device).train()
    train_cfg = TrainConfig(lr=0.01)
    x = torch.rand(batch, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, k, (batch,), device=device)
    counts = torch.logspace(3, 1, k, device=device)  # a long-tailed prior for the logit adjustment
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    fwd_scilt = torch.compile(scilt) if args.compile else scilt
    fwd_final = torch.compile(final_only) if args.compile else final_only

    def make_step(module: nn.Module, forward: Callable, loss_fn: Callable) -> Callable[[], None]:
        optimizer = make_optimizer([p for p in module.parameters() if p.requires_grad], train_cfg, device)

        def step() -> None:
            with amp():
                out = forward(x)
            loss = loss_fn(out)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    steps = {
        "final_only": make_step(final_only, fwd_final,
                                lambda s: logit_adjusted_cross_entropy(s.float(), y, counts, tau=1.0)),
        "scilt": make_step(scilt, fwd_scilt, lambda out: scilt_loss(out, y, counts, train_cfg)),
    }
    flops = {name: step_flops(fn) for name, fn in steps.items()} if not args.compile else {}
    t = interleaved_medians(steps, repeats=repeats, warmup=args.warmup, device=device)
    ratio = t["scilt"]["median"] / t["final_only"]["median"]
    mfu = ""
    result: dict = {"ratio": ratio, "timings": t, "flops": flops, "throughput_ratio": 1.0 / ratio}
    if device.type == "cuda" and flops:
        name = torch.cuda.get_device_name(device)
        peak = args.peak_tflops or next((v for key, v in PEAK_BF16_TFLOPS.items() if key in name), None)
        if peak:
            result["mfu"] = {n: flops[n] / t[n]["median"] / (peak * 1e12) for n in steps}
            mfu = (f"; MFU (counted FLOPs / time / {peak:g} TFLOP/s bf16 peak): SciLT "
                   f"{100 * result['mfu']['scilt']:.1f}%, final-only {100 * result['mfu']['final_only']:.1f}%")
    depth = args.depth or len(scilt.backbone.blocks)
    flop_note = (f"; step GFLOPs counted: SciLT {flops['scilt'] / 1e9:.1f}, final-only "
                 f"{flops['final_only'] / 1e9:.1f}" if flops else "")
    row = (f"| {args.arch} depth {depth}, {args.img_size} px / patch {args.patch_size}, adapter {args.adapter}, "
           f"K={k}{', compiled' if args.compile else ''} | {device.type} | {batch} "
           f"| {t['final_only']['median'] * 1e3:.1f} | {t['scilt']['median'] * 1e3:.1f} "
           f"| {batch / t['scilt']['median']:.1f} | **{ratio:.3f}x** |")
    table = ("| model | device | batch | final-only step ms (median) | SciLT step ms (median) | SciLT images/s "
             "| ratio SciLT / final-only (goal <= 1.05) |\n| --- | --- | --- | --- | --- | --- | --- |\n" + row)
    result["text"] = (f"{machine_line(device)}; {repeats} interleaved repeats, medians{flop_note}{mfu}\n\n{table}")
    return result


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
        append_section(args.results_path, SECTION, command_line("benchmarks.bench_step", argv), result["text"])
    return result


if __name__ == "__main__":
    main()
