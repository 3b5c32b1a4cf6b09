"""Training of the SciLT fused model (THEORY §1): logit-adjusted CE on both heads, SGD + cosine schedule.

loss = LA-CE(s1, y) + λ · LA-CE(s2, y), LA-CE(z, y) = CE(z + τ·log π, y) with π the training class prior;
prediction = argmax(s1 + s2). The loop is small on purpose: data → model → optimiser → run.pt. A peer method
(scilt_theory/methods.py) changes it only through its settings, its :class:`~scilt_theory.methods.Objective`
and, for H2T / PI-H2T, a classifier re-training stage after the loop.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from scilt_theory import distributed
from scilt_theory.checkpoint import atomic_write_text, check_output_dir, library_versions, save_run
from scilt_theory.data import DataConfig, LongTailDataset, build_dataset, make_loader, row_range
from scilt_theory.features import extract_features
from scilt_theory.h2t import retrain_classifier
from scilt_theory.methods import MethodConfig, Objective, supervised_loss
from scilt_theory.metrics import evaluate_predictions, metrics_markdown
from scilt_theory.models import ModelConfig, SciLTModel, build_model
from scilt_theory.train_state import PeriodicCheckpointer, Progress, load_for_resume, non_finite_loss_error, \
    restore_training

OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults follow LIFT (SGD, momentum 0.9, wd 5e-4, cosine schedule)."""

    epochs: int = field(default=20, metadata={"help": "number of passes over the training set"})
    batch_size: int = field(default=64, metadata={"help": "training batch size"})
    lr: float = field(default=0.05, metadata={"help": "peak learning rate (after warm-up)"})
    optimizer: str = field(default="sgd", metadata={"help": f"one of {OPTIMIZERS}"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum (ignored by adamw)"})
    weight_decay: float = field(default=5e-4, metadata={"help": "weight decay"})
    warmup_epochs: float = field(default=1.0, metadata={"help": "linear warm-up length in epochs (0 = none)"})
    tau: float = field(default=1.0, metadata={"help": "logit-adjustment strength τ (0 = plain CE)"})
    lam: float = field(default=1.0, metadata={"help": "weight λ of the second head's loss"})
    augment: bool = field(default=True, metadata={"help": "random flips and 90° rotations of training images"})
    holdout_fraction: float = field(default=0.0, metadata={
        "help": "fraction of each class's training images held out from training (stratified, seeded, at least "
                "one image kept for training); needed by `experiments.bounds --mode certified`, which refits "
                "the heads and evaluates the bound on this disjoint part"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, data order and augmentation"})
    device: str = field(default="auto", metadata={"help": f"one of {DEVICES}; auto picks CUDA when present"})
    eval_batch_size: int = field(default=256, metadata={"help": "batch size for evaluation"})
    out: str = field(default="runs/run", metadata={"help": "output directory for run.pt, metrics.json, metrics.md"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars or per-epoch lines"})
    num_workers: int | None = field(default=None, metadata={
        "help": "data-loader worker processes (batches are pinned in page-locked memory on CUDA); none = automatic "
                "(workers only for more than 2048 images read from files); the data order depends on the seed "
                "only, whatever this is"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the training forward (first steps are slower while it compiles)"})
    save_every: int = field(default=0, metadata={
        "help": "write the full training state to OUT/run.pt (marked unfinished) every N optimiser steps, for "
                "--resume after a crash or kill; 0 = only the final run.pt"})

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs must lie in [0, epochs], got {self.warmup_epochs}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")
        if self.tau < 0 or self.lam < 0:
            raise ValueError("tau and lam must be non-negative")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be at least 0, got {self.num_workers}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.save_every < 0:
            raise ValueError(f"save_every must be a non-negative number of optimiser steps, got {self.save_every}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA device is available")


def holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified split of sample indices into (fit, holdout): ⌊fraction·n_c⌋ of each class held out, but at
    least one image of every class stays in the fit part. Seeded, so the bounds command can re-create it."""
    generator = torch.Generator().manual_seed(seed + 7919)
    fit, held = [], []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        k = min(int(fraction * idx.numel()), idx.numel() - 1)
        held.append(idx[:k])
        fit.append(idx[k:])
    return torch.sort(torch.cat(fit)).values, torch.sort(torch.cat(held)).values


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment_batch(images: torch.Tensor, generator: torch.Generator, global_size: int | None = None,
                  offset: int = 0) -> torch.Tensor:
    """Random horizontal/vertical flips and 90° rotations, one choice per image (scientific images have
    no canonical orientation). Square images only, which all our data sets are.

    In multi-process training ``images`` are rows ``offset:offset + B`` of a global batch of ``global_size``:
    the choices are drawn for the whole global batch (as one process does) and sliced.
    """
    batch = images.shape[0]
    choice = torch.randint(0, 8, (global_size or batch,), generator=generator)[offset:offset + batch]
    out = images.clone()
    for k in range(8):
        idx = (choice == k).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        x = images[idx]
        if k & 4:
            x = x.flip(-1)
        out[idx] = torch.rot90(x, k & 3, dims=(-2, -1))
    return out


def scilt_loss(output, targets: torch.Tensor, class_counts: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Dual supervision of THEORY §1: LA-CE(s1) + λ·LA-CE(s2) (methods.supervised_loss with τ, λ of config)."""
    return supervised_loss(output, targets, class_counts, tau=config.tau, lam=config.lam)


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig, device: torch.device):
    fused = device.type == "cuda"  # fused kernels exist for CUDA only
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               fused=fused or None)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


@torch.no_grad()
def predict(model: SciLTModel, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Scores s1 + s2 for every image, computed in batches (CPU tensor (N, K))."""
    model.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs.append(model(x).logits.float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, model.config.num_classes)


def evaluate_model(model: SciLTModel, data: LongTailDataset, batch_size: int, device: torch.device) -> dict:
    ctx = distributed.current()  # under torchrun each process scores its shard of the test split
    start, stop = ctx.shard(len(data.test_images))
    scores = ctx.gather_rows(predict(model, row_range(data.test_images, start, stop), batch_size, device))
    cfg = data.config
    return evaluate_predictions(data.test_labels.numpy(), scores.argmax(dim=1).numpy(),
                                num_classes=data.num_classes, train_counts=data.class_counts.tolist(),
                                class_names=data.class_names, many_threshold=cfg.many_threshold,
                                few_threshold=cfg.few_threshold)


@dataclass
class TrainResult:
    model: SciLTModel
    data: LongTailDataset
    metrics: dict
    history: list[dict]
    run_path: Path
    seconds: float


def train(data_config: DataConfig, model_config: ModelConfig, config: TrainConfig,
          *, method: MethodConfig | None = None, data: LongTailDataset | None = None,
          log: Callable[[str], None] = print, resume: str | Path | None = None) -> TrainResult:
    """Train the SciLT model (or the peer ``method`` names), evaluate it on the balanced test split and write
    run.pt + metrics.

    ``model_config.num_classes`` is overwritten by the data set's class count, and the method's fixed settings
    (e.g. one head for ``final_only``, τ = 0 for ``ce``) overwrite the given ones. With ``config.save_every`` the
    full training state goes to OUT/run.pt every N optimiser steps; ``resume`` (such a file, made with the same
    settings) continues it exactly where it stopped (scilt_theory/train_state.py).
    """
    started = time.perf_counter()
    ctx = distributed.current()  # torchrun: this process's rank (scilt_theory/distributed.py)
    ctx.check_batch_size(config.batch_size)
    method = method if method is not None else MethodConfig()
    recipe = method.method
    if ctx.enabled and (recipe.couples_batch or recipe.h2t):
        raise ValueError(f"method {recipe.name!r} runs in one process only: its objective or its re-training stage "
                         f"would differ if a batch were split over {ctx.world_size} processes")
    model_config, config = recipe.configure(model_config, config)
    config = config if ctx.is_main else replace(config, quiet=True)  # rank 0 alone logs
    out_dir = check_output_dir(config.out, create=True)  # before any work, not after it
    device = ctx.device(resolve_device(config.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(config.seed)
    if data is None:
        data = build_dataset(data_config)
    model_config = ModelConfig.from_dict({**model_config.to_dict(), "num_classes": data.num_classes})
    if tuple(data.train_images.shape[-2:]) != (model_config.img_size,) * 2:
        raise ValueError(f"the images of {data.name!r} are {tuple(data.train_images.shape[-2:])} pixels but the "
                         f"model expects {model_config.img_size} x {model_config.img_size} (img_size)")
    resume_record = None if resume is None else load_for_resume(
        resume, data_config=asdict(data.config), model_config=model_config.to_dict(), train_config=asdict(config),
        method_config=method.to_dict())
    model = build_model(model_config).to(device)
    recipe.prepare_model(model, method)
    fit_index, holdout_index = holdout_split(data.train_labels, config.holdout_fraction, config.seed)
    fit_images, fit_labels = data.train_images[fit_index], data.train_labels[fit_index]
    fit_counts = torch.bincount(fit_labels, minlength=data.num_classes)
    class_counts = fit_counts.to(device=device, dtype=torch.float32)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config, device)
    loader = make_loader(fit_images, fit_labels, batch_size=config.batch_size, shuffle=True,
                         seed=config.seed, drop_last=False, num_workers=config.num_workers,
                         pin_memory=device.type == "cuda", shard=ctx.shard_spec)
    objective = Objective(method, class_counts, tau=config.tau, lam=config.lam, num_classes=data.num_classes)
    unused = (model.head2 is not None and not config.lam) or not model.uses_final_block
    net = ctx.wrap(model, device, find_unused_parameters=unused)  # DDP under torchrun
    net = torch.compile(net) if config.compile else net
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total_steps, int(round(config.warmup_epochs * steps_per_epoch))))
    aug_generator = torch.Generator().manual_seed(config.seed + 1)

    def run_record() -> dict:
        return {"method": recipe.name, "method_config": method.to_dict(), "method_state": objective.state_dict(),
                "model_config": model_config.to_dict(), "data_config": asdict(data.config),
                "train_config": asdict(config),
                "model_state": {k: v.detach().cpu() for k, v in model.trainable_state_dict().items()},
                "weights_sha256": model.weights_sha256, "class_names": list(data.class_names),
                "class_counts": [int(n) for n in data.class_counts], "fit_counts": [int(n) for n in fit_counts],
                "data_fingerprint": data.provenance.get("fingerprint"),  # real data sets: which images (data/split.py)
                "holdout_indices": holdout_index.tolist(), "versions": library_versions()}

    # rank 0 alone writes checkpoints
    checkpointer = PeriodicCheckpointer(out_dir / "run.pt", config.save_every if ctx.is_main else 0, run_record)
    progress = Progress(steps_per_epoch=steps_per_epoch)
    if resume_record is not None:
        progress = restore_training(resume_record, model, optimizer, scheduler, steps_per_epoch)
        objective.load_state_dict(resume_record.get("method_state"))
        if not config.quiet:
            log(f"resuming {resume} at epoch {progress.epoch + 1}, batch {progress.step_in_epoch}/{steps_per_epoch}")
    if not config.quiet:
        log(f"method {recipe.name}: {recipe.summary}")
        log(f"training {model_config.arch} (depth {model_config.depth or 'default'}, adapter {model_config.adapter}, "
            f"{model.num_trainable_parameters():,} trainable parameters) on {data.name}: "
            f"{len(fit_labels)} train ({len(holdout_index)} held out) / {len(data.test_labels)} test images, {data.num_classes} classes, "
            f"device {device}")
    history = progress.history
    for epoch in range(progress.epoch, config.epochs):
        model.train()
        epoch_start = time.perf_counter()
        batches = progress.epoch_batches(epoch, loader, aug_generator)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, initial=progress.step_in_epoch,
                   total=steps_per_epoch, disable=config.quiet or None)
        for images, labels in bar:
            global_size, offset = ctx.batch_shard(progress.step_in_epoch, len(fit_labels), config.batch_size)
            if config.augment:
                images = augment_batch(images, aug_generator, global_size, offset)
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                output = net(images, labels)  # the labels only feed PI-H2T's feature fusion, if any
            # an empty shard (a last batch smaller than the process count) still joins DDP's all-reduce
            loss = objective(output, labels) if len(labels) else output.logits.sum() * 0.0
            if not torch.isfinite(loss):
                raise non_finite_loss_error(loss, progress, config.lr, checkpointer)
            optimizer.zero_grad(set_to_none=True)
            ctx.scaled_loss(loss, len(labels), global_size).backward()
            optimizer.step()
            scheduler.step()
            progress.step_done(float(loss.detach()), int((output.logits.detach().argmax(dim=1) == labels).sum()),
                               labels.shape[0])
            checkpointer.maybe_save(model, optimizer, scheduler, progress, aug_generator)
        # this process's sums, added over the processes under torchrun (a resumed epoch's sums before the save
        # are rank 0's: they only feed the logged loss and accuracy)
        total_loss, correct, seen = ctx.sum([progress.total_loss, progress.correct, progress.seen])
        record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
                  "alpha": float(model.alpha.detach()), "lr": scheduler.get_last_lr()[0],
                  "seconds": time.perf_counter() - epoch_start}
        history.append(record)
        if not config.quiet:
            log(f"epoch {record['epoch']:3d}/{config.epochs}  loss {record['loss']:.4f}  "
                f"train acc {100 * record['train_acc']:5.1f}%  alpha {record['alpha']:.3f}  "
                f"lr {record['lr']:.4g}  {record['seconds']:.1f}s")
    stage2 = retrain_heads_h2t(model, fit_images, fit_labels, class_counts, config, method, device) \
        if recipe.h2t else None
    metrics = evaluate_model(model, data, config.eval_batch_size, device)
    seconds = time.perf_counter() - started
    metrics["train_seconds"] = seconds
    metrics["history"] = history
    if stage2 is not None:
        metrics["h2t_history"] = stage2
    if not ctx.is_main:  # rank 0 alone writes run.pt and the metrics files
        ctx.barrier()
        return TrainResult(model=model, data=data, metrics=metrics, history=history, run_path=out_dir / "run.pt",
                           seconds=seconds)
    run_path = save_run(out_dir / "run.pt", {**run_record(), "metrics": _json_safe(metrics), "finished": True})
    import json

    atomic_write_text(json.dumps(_json_safe(metrics), indent=2) + "\n", out_dir / "metrics.json")
    atomic_write_text(metrics_markdown(metrics, title=f"{recipe.name} on {data.name} (test split, balanced)"),
                      out_dir / "metrics.md")
    ctx.barrier()
    return TrainResult(model=model, data=data, metrics=metrics, history=history, run_path=run_path, seconds=seconds)


def retrain_heads_h2t(model: SciLTModel, images: torch.Tensor, labels: torch.Tensor, class_counts: torch.Tensor,
                      config: TrainConfig, method: MethodConfig, device: torch.device) -> list[dict]:
    """H2T's classifier re-training stage (scilt_theory/h2t.py) after the main loop: the CLS features of the
    training images are extracted once with the trained, now frozen backbone (no augmentation), then the heads
    and α are re-trained on class-balanced batches fused with instance-sampled ones. The loss is the dual CE
    without logit adjustment (balanced sampling already removes the prior). Deterministic given the seed."""
    model.train_feature_fusion = None  # PIF belongs to representation learning, not to this stage
    feats = extract_features(model, images, labels, batch_size=config.eval_batch_size, device=device,
                             progress=not config.quiet, desc="H2T features", dtype=torch.float32)
    counts = class_counts.to(device)

    def loss_fn(output, targets):
        return supervised_loss(output, targets, counts, tau=0.0, lam=config.lam)

    return retrain_classifier(model, feats.phi_penult, feats.phi_final, feats.labels, loss_fn, method.h2t,
                              seed=config.seed + 4099, progress=not config.quiet)


def _json_safe(value):
    """Plain Python containers only (no numpy scalars), so run.pt stays weights_only-loadable."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value
