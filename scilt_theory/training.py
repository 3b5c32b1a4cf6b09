"""Training of the SciLT fused model (THEORY §1): logit-adjusted CE on both heads, SGD + cosine schedule.

loss = LA-CE(s1, y) + λ · LA-CE(s2, y), LA-CE(z, y) = CE(z + τ·log π, y) with π the training class prior;
prediction = argmax(s1 + s2). The loop is small on purpose: data → model → optimiser → run.pt. A peer method
(scilt_theory/methods.py) changes it only through its settings, its :class:`~scilt_theory.methods.Objective`
and, for H2T / PI-H2T, a classifier re-training stage after the loop.

:func:`train` is three stages in data-flow order: :func:`set_up` → :func:`run_epoch` (per epoch, one :func:`train_step`
per batch) → :func:`finish`, around one :class:`TrainingRun`. The fusion logit has an optimiser group of its own
(``alpha_lr``, no weight decay; :func:`param_groups`) and α is recorded after every step (each epoch's ``history``
record holds its steps' α; :func:`alpha_trajectory` joins them). With a frozen backbone (adapter none, no drop path)
batches carry CLS features instead of images: with ``feature_cache`` those of all 8 augmented views of every training
image are extracted once (scilt_theory/features.py, one backbone pass per image), and each step picks the view the
augmentation generator draws, so the run is bit for bit the one that computes them at every step
(``feature_cache=False``).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from scilt_theory import distributed
from scilt_theory.checkpoint import atomic_write_text, check_output_dir, library_versions
from scilt_theory.codec import to_jsonable
from scilt_theory.data import DataConfig, LongTailDataset, build_dataset, holdout_split, make_loader, row_range
from scilt_theory.distributed import DistContext
from scilt_theory.feature_store import FeatureStore
from scilt_theory.features import (
    NUM_VIEWS,
    ViewFeatures,
    apply_view,
    backbone_is_frozen,
    batch_view_features,
    extract_features,
    extract_view_features,
)
from scilt_theory.h2t import retrain_classifier
from scilt_theory.methods import MethodConfig, Objective, supervised_loss
from scilt_theory.metrics import evaluate_predictions, metrics_markdown
from scilt_theory.models import ModelConfig, SciLTModel, build_model
from scilt_theory.run_record import RunRecord, write_run
from scilt_theory.train_config import TrainConfig
from scilt_theory.train_state import (
    PeriodicCheckpointer,
    Progress,
    load_for_resume,
    non_finite_loss_error,
    restore_training,
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of TrainConfig.precision on ``device``: bfloat16 for bf16 (and auto on CUDA), else off."""
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


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
    choice = augment_views(images.shape[0], generator, global_size, offset)
    out = images.clone()
    for k in range(NUM_VIEWS):
        idx = (choice == k).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        out[idx] = apply_view(images[idx], k)
    return out


def augment_views(batch: int, generator: torch.Generator, global_size: int | None = None,
                  offset: int = 0) -> torch.Tensor:
    """The view (0 … 7, :func:`scilt_theory.features.apply_view`) :func:`augment_batch` draws for each of ``batch``
    images: the same random numbers, so a run on cached view features augments exactly as a run on images."""
    return torch.randint(0, NUM_VIEWS, (global_size or batch,), generator=generator)[offset:offset + batch]


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


#: name of the optimiser parameter group that holds the fusion logit (see :func:`param_groups`)
ALPHA_GROUP = "alpha"


def param_groups(model: SciLTModel, config: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups: every trainable parameter but the fusion logit (lr, weight decay of
    ``config``), then the fusion logit alone, when it trains, at ``config.alpha_lr`` (``lr`` when None) and without
    weight decay (decay would pull α towards 1/2, a prior the fusion should not have). LambdaLR scales every group
    by the same factor, so α follows the same warm-up and cosine decay from its own peak."""
    logit = getattr(model.fusion, "logit", None)
    alpha = [logit] if isinstance(logit, torch.nn.Parameter) and logit.requires_grad else []
    rest = [p for p in model.parameters() if p.requires_grad and not any(p is a for a in alpha)]
    groups = [{"params": rest, "name": "weights"}]
    if alpha:
        groups.append({"params": alpha, "name": ALPHA_GROUP, "weight_decay": 0.0,
                       "lr": config.lr if config.alpha_lr is None else config.alpha_lr})
    return groups


def make_optimizer(params: list[torch.nn.Parameter] | list[dict], config: TrainConfig, device: torch.device):
    """SGD (momentum) or AdamW over ``params``: a list of parameters or of parameter groups (:func:`param_groups`;
    a group's own ``lr`` / ``weight_decay`` override the config's)."""
    fused = device.type == "cuda"  # fused kernels exist for CUDA only
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               fused=fused or None)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


@torch.no_grad()
def predict(model: SciLTModel, images: torch.Tensor, batch_size: int, device: torch.device,
            precision: str = "auto") -> torch.Tensor:
    """Scores s1 + s2 for every image, computed in batches (CPU tensor (N, K)), in ``precision`` (autocast_for)."""
    model.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        with autocast_for(precision, device):
            outputs.append(model(x).logits.float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, model.config.num_classes)


def evaluate_model(model: SciLTModel, data: LongTailDataset, batch_size: int, device: torch.device,
                   precision: str = "auto") -> dict:
    """The long-tail metrics of the model on the test split and, under ``splits``, on every extra split of the data
    set (scitiles-pop: the validation draw, where recipes are chosen, and the out-of-population shift split)."""
    metrics = evaluate_test_predictions(data, _predicted(model, data.test_images, batch_size, device, precision))
    out_of_population = set(data.provenance.get("out_of_population_splits", ()))
    splits = {}
    for name, (images, labels) in data.extra_splits.items():
        predicted = _predicted(model, images, batch_size, device, precision)
        splits[name] = {**evaluate_test_predictions(data, predicted, labels),
                        "in_population": name not in out_of_population}
    if splits:
        metrics["splits"] = splits
    return metrics


def _predicted(model: SciLTModel, images, batch_size: int, device: torch.device, precision: str) -> np.ndarray:
    ctx = distributed.current()  # under torchrun each process scores its shard
    start, stop = ctx.shard(len(images))
    scores = ctx.gather_rows(predict(model, row_range(images, start, stop), batch_size, device, precision))
    return scores.argmax(dim=1).numpy()


def evaluate_test_predictions(data: LongTailDataset, predictions, labels: torch.Tensor | None = None) -> dict:
    """The long-tail metrics of predicted labels of the test split (or of ``labels``, another split's), with groups
    by the training counts of ``data``."""
    cfg = data.config
    labels = data.test_labels if labels is None else labels
    return evaluate_predictions(labels.numpy(), predictions, num_classes=data.num_classes,
                                train_counts=data.class_counts.tolist(), class_names=data.class_names,
                                many_threshold=cfg.many_threshold, few_threshold=cfg.few_threshold)


@dataclass
class TrainResult:
    model: SciLTModel
    data: LongTailDataset
    metrics: dict
    history: list[dict]
    run_path: Path
    seconds: float


@dataclass(frozen=True)
class FitSplit:
    """The training images the optimiser sees (``fit``) and the stratified hold-out kept out of training."""

    fit_index: torch.Tensor
    holdout_index: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor  #: (K,) int64 class counts of the fit part (the prior of the logit adjustment)


@dataclass
class TrainingRun:
    """What one run holds from set-up to finish: made by :func:`set_up`, advanced by :func:`run_epoch`, written by
    :func:`finish`."""

    method: MethodConfig
    model_config: ModelConfig
    config: TrainConfig
    ctx: DistContext
    device: torch.device
    out_dir: Path
    data: LongTailDataset
    model: SciLTModel
    split: FitSplit
    class_counts: torch.Tensor  #: float32 fit counts on the device
    optimizer: torch.optim.Optimizer
    loader: torch.utils.data.DataLoader
    objective: Objective
    net: torch.nn.Module  #: the module the batches go through (DDP / compiled wrapper of ``model``)
    scheduler: torch.optim.lr_scheduler.LambdaLR
    aug_generator: torch.Generator
    started: float
    frozen: bool = False  #: the backbone is a fixed function of the image: batches carry CLS features, not images
    view_features: ViewFeatures | None = None  #: frozen backbone with feature_cache: every view of every fit image
    feature_cache: dict | None = None  #: what the cache holds and how long it took (metrics["feature_cache"])
    checkpointer: PeriodicCheckpointer | None = None
    progress: Progress | None = None

    @property
    def num_views(self) -> int:
        """Views per image of the frozen-feature path: the 8 of the augmentation group, or the image alone."""
        return NUM_VIEWS if self.config.augment else 1

    @property
    def recipe(self):
        return self.method.method

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def run_record(self) -> RunRecord:
        """The run.pt record of this run at this moment (a periodic checkpoint adds its training state)."""
        data, model = self.data, self.model
        return RunRecord(
            method=self.recipe.name, method_config=self.method, method_state=self.objective.state_dict(),
            model_config=self.model_config, data_config=data.config, train_config=self.config,
            model_state={k: v.detach().cpu() for k, v in model.trainable_state_dict().items()},
            weights_sha256=model.weights_sha256, class_names=list(data.class_names),
            class_counts=[int(n) for n in data.class_counts], fit_counts=[int(n) for n in self.split.counts],
            data_fingerprint=data.provenance.get("fingerprint"),  # real data sets: which images (data/split.py)
            holdout_indices=self.split.holdout_index.tolist(), versions=library_versions())


def train(data_config: DataConfig, model_config: ModelConfig, config: TrainConfig,
          *, method: MethodConfig | None = None, data: LongTailDataset | None = None,
          log: Callable[[str], None] = print, resume: str | Path | None = None) -> TrainResult:
    """Train the SciLT model (or the peer ``method`` names), evaluate it on the balanced test split and write
    run.pt + metrics.

    ``model_config.num_classes`` is overwritten by the data set's class count, and the method's fixed settings
    (e.g. one head for ``final_only``, τ = 0 for ``ce``) overwrite the given ones. With ``config.save_every`` the
    full training state goes to OUT/run.pt every N optimiser steps; ``resume`` (such a file, made with the same
    settings) continues it exactly where it stopped (scilt_theory/train_state.py).

    The three stages, in the order the data flows: :func:`set_up` (configs → device → data → model → hold-out →
    optimiser → loader → objective → schedule → checkpointer), :func:`run_epoch` per epoch, :func:`finish`
    (H2T stage, evaluation, run.pt and metrics files).
    """
    run = set_up(data_config, model_config, config, method=method, data=data, log=log, resume=resume)
    for epoch in range(run.progress.epoch, run.config.epochs):
        run_epoch(run, epoch, log)
    return finish(run)


# ---- set-up ---------------------------------------------------------------------------------------------------
def set_up(data_config: DataConfig, model_config: ModelConfig, config: TrainConfig, *,
           method: MethodConfig | None = None, data: LongTailDataset | None = None,
           log: Callable[[str], None] = print, resume: str | Path | None = None) -> TrainingRun:
    """Everything before the first batch, in data-flow order; the global RNG is consumed in a fixed order (data,
    then model), so a run and its resumption build the same model."""
    started = time.perf_counter()
    ctx = distributed.current()  # torchrun: this process's rank (scilt_theory/distributed.py)
    method, model_config, config = resolve_configs(model_config, config, method, ctx)
    device = training_device(config.device, ctx)
    out_dir = check_output_dir(config.out, create=True)  # before any work, not after it
    seed_everything(config.seed)
    data, model_config = load_data(data_config, model_config, data)
    resume_record = None if resume is None else load_for_resume(
        resume, data_config=asdict(data.config), model_config=model_config.to_dict(), train_config=asdict(config),
        method_config=method.to_dict())
    model = build_model(model_config).to(device)
    method.method.prepare_model(model, method)
    split = fit_split(data, config)
    class_counts = split.counts.to(device=device, dtype=torch.float32)
    optimizer = make_optimizer(param_groups(model, config), config, device)
    frozen = backbone_is_frozen(model)
    loader = make_train_loader(split, config, device, ctx, cached=frozen and config.feature_cache)
    objective = Objective(method, class_counts, tau=config.tau, lam=config.lam, num_classes=data.num_classes)
    net = wrap_model(FeatureHeads(model) if frozen else model, config, ctx, device)
    run = TrainingRun(method=method, model_config=model_config, config=config, ctx=ctx, device=device,
                      out_dir=out_dir, data=data, model=model, split=split, class_counts=class_counts,
                      optimizer=optimizer, loader=loader, objective=objective, net=net,
                      scheduler=make_scheduler(optimizer, config, len(loader)),
                      aug_generator=torch.Generator().manual_seed(config.seed + 1), started=started, frozen=frozen)
    # rank 0 alone writes checkpoints
    run.checkpointer = PeriodicCheckpointer(out_dir / "run.pt", config.save_every if ctx.is_main else 0,
                                            run.run_record)
    run.progress = Progress(steps_per_epoch=run.steps_per_epoch, alpha_start=float(model.alpha.detach())) \
        if resume_record is None else resume_training(run, resume_record)
    if not config.quiet:
        if resume_record is not None:
            log(f"resuming {resume} at epoch {run.progress.epoch + 1}, batch {run.progress.step_in_epoch}/"
                f"{run.steps_per_epoch}")
        log_start(run, log)
    if frozen and config.feature_cache:  # after a resume restored the model: a random frozen backbone is saved
        cache_features(run, log)
    return run


def resolve_configs(model_config: ModelConfig, config: TrainConfig, method: MethodConfig | None,
                    ctx: DistContext) -> tuple[MethodConfig, ModelConfig, TrainConfig]:
    """The method (SciLT by default) with its fixed settings applied; refuses what torchrun cannot split."""
    ctx.check_batch_size(config.batch_size)
    method = method if method is not None else MethodConfig()
    recipe = method.method
    if ctx.enabled and (recipe.couples_batch or recipe.h2t):
        raise ValueError(f"method {recipe.name!r} runs in one process only: its objective or its re-training stage "
                         f"would differ if a batch were split over {ctx.world_size} processes")
    model_config, config = recipe.configure(model_config, config)
    config = config if ctx.is_main else replace(config, quiet=True)  # rank 0 alone logs
    return method, model_config, config


def training_device(name: str, ctx: DistContext) -> torch.device:
    """This process's device (TF32 matmuls on CUDA)."""
    if name == "cuda" and not torch.cuda.is_available():  # the machine, not the settings: checked where they meet it
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    device = ctx.device(resolve_device(name))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def load_data(data_config: DataConfig, model_config: ModelConfig,
              data: LongTailDataset | None = None) -> tuple[LongTailDataset, ModelConfig]:
    """The data set (built unless given) and the model config with its class count; the images must have the
    model's input size."""
    if data is None:
        data = build_dataset(data_config)
    model_config = ModelConfig.from_dict({**model_config.to_dict(), "num_classes": data.num_classes})
    if tuple(data.train_images.shape[-2:]) != (model_config.img_size,) * 2:
        raise ValueError(f"the images of {data.name!r} are {tuple(data.train_images.shape[-2:])} pixels but the "
                         f"model expects {model_config.img_size} x {model_config.img_size} (img_size)")
    return data, model_config


def fit_split(data: LongTailDataset, config: TrainConfig) -> FitSplit:
    """The stratified hold-out of ``config.holdout_fraction`` (the one place the split is made)."""
    fit_index, holdout_index = holdout_split(data.train_labels, config.holdout_fraction, config.seed, data.train_groups)
    labels = data.train_labels[fit_index]
    return FitSplit(fit_index=fit_index, holdout_index=holdout_index, images=data.train_images[fit_index],
                    labels=labels, counts=torch.bincount(labels, minlength=data.num_classes))


def make_train_loader(split: FitSplit, config: TrainConfig, device: torch.device, ctx: DistContext, *,
                      cached: bool = False) -> torch.utils.data.DataLoader:
    """The seeded, shuffled loader of the fit images; ``cached``: of their positions in the fit split instead
    (the batches of a run on cached features), drawn from the same generator in the same way, so both give the same
    batches in the same order."""
    if cached:
        return make_loader(torch.arange(len(split.labels)), split.labels, batch_size=config.batch_size, shuffle=True,
                           seed=config.seed, drop_last=False, num_workers=0, shard=ctx.shard_spec)
    return make_loader(split.images, split.labels, batch_size=config.batch_size, shuffle=True,
                       seed=config.seed, drop_last=False, num_workers=config.num_workers,
                       pin_memory=device.type == "cuda", shard=ctx.shard_spec)


class FeatureHeads(torch.nn.Module):
    """The part of :class:`SciLTModel` after the backbone, as a module of its own (what DDP / compile wrap when the
    backbone is frozen): PI-H2T's feature fusion when labels are given (as ``SciLTModel.forward``), then
    ``output_from_features``."""

    def __init__(self, model: SciLTModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, phi_penult: torch.Tensor, phi_final: torch.Tensor, labels: torch.Tensor | None = None):
        model = self.model
        if labels is not None and model.train_feature_fusion is not None:
            phi_penult = model.train_feature_fusion(phi_penult, labels)
            phi_final = model.train_feature_fusion(phi_final, labels)
        return model.output_from_features(phi_penult, phi_final)


def cache_features(run: TrainingRun, log: Callable[[str], None] = print) -> None:
    """Extract every view of every fit image once with the frozen backbone (run.view_features)."""
    started = time.perf_counter()
    store = None if run.config.feature_store is None else FeatureStore(run.config.feature_store)
    features = extract_view_features(run.model, run.split.images, run.num_views, device=run.device,
                                     batch_size=run.config.eval_batch_size, progress=not run.config.quiet,
                                     context=run.ctx, store=store)
    run.view_features = features.to(run.device)
    # no wall-clock time in the metrics entry: it stays equal between a run and its resumption (train_seconds and
    # the log line have it)
    run.feature_cache = {"images": int(features.phi_penult.shape[0]), "views": run.num_views,
                         "megabytes": round(features.nbytes / 2 ** 20, 3)}
    if not run.config.quiet:
        log(f"frozen backbone: cached the CLS features of {run.feature_cache['views']} view(s) of "
            f"{run.feature_cache['images']} training images ({run.feature_cache['megabytes']:.1f} MiB) in "
            f"{time.perf_counter() - started:.1f} s")


def wrap_model(model: torch.nn.Module, config: TrainConfig, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """DDP under torchrun, then torch.compile when asked for (``model``: a SciLTModel or its FeatureHeads)."""
    core = model.model if isinstance(model, FeatureHeads) else model
    unused = (core.head2 is not None and not config.lam) or not core.uses_final_block
    net = ctx.wrap(model, device, find_unused_parameters=unused)
    return torch.compile(net) if config.compile else net


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay over all optimiser steps, per step."""
    total_steps = steps_per_epoch * config.epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total_steps, int(round(config.warmup_epochs * steps_per_epoch))))


def resume_training(run: TrainingRun, record: RunRecord) -> Progress:
    """Model, optimiser, schedule and method state from a periodic checkpoint; the progress to continue from."""
    progress = restore_training(record, run.model, run.optimizer, run.scheduler, run.steps_per_epoch)
    run.objective.load_state_dict(record.method_state)
    return progress


def log_start(run: TrainingRun, log: Callable[[str], None]) -> None:
    model_config, data = run.model_config, run.data
    log(f"method {run.recipe.name}: {run.recipe.summary}")
    log(f"training {model_config.arch} (depth {model_config.depth or 'default'}, adapter {model_config.adapter}, "
        f"{run.model.num_trainable_parameters():,} trainable parameters) on {data.name}: "
        f"{len(run.split.labels)} train ({len(run.split.holdout_index)} held out) / {len(data.test_labels)} test "
        f"images, {data.num_classes} classes, device {run.device}")


# ---- one epoch ------------------------------------------------------------------------------------------------
def run_epoch(run: TrainingRun, epoch: int, log: Callable[[str], None] = print) -> dict:
    """The batch loop of ``epoch`` (0-based; the rest of it when resuming inside it); returns its history record."""
    config, progress = run.config, run.progress
    run.model.train()
    epoch_start = time.perf_counter()
    batches = progress.epoch_batches(epoch, run.loader, run.aug_generator)
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, initial=progress.step_in_epoch,
               total=run.steps_per_epoch, disable=config.quiet or None)
    for images, labels in bar:
        train_step(run, images, labels)
    # this process's sums, added over the processes under torchrun (a resumed epoch's sums before the save
    # are rank 0's: they only feed the logged loss and accuracy)
    total_loss, correct, seen = run.ctx.sum([progress.total_loss, progress.correct, progress.seen])
    record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
              "alpha": float(run.model.alpha.detach()), "lr": run.scheduler.get_last_lr()[0],
              "seconds": time.perf_counter() - epoch_start,
              **alpha_epoch_fields(progress, epoch, run.steps_per_epoch * config.epochs)}
    progress.history.append(record)
    if not config.quiet:
        log(f"epoch {record['epoch']:3d}/{config.epochs}  loss {record['loss']:.4f}  "
            f"train acc {100 * record['train_acc']:5.1f}%  alpha {record['alpha']:.3f}  "
            f"lr {record['lr']:.4g}  {record['seconds']:.1f}s")
    return record


def train_step(run: TrainingRun, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One optimiser step on one batch (this process's part of the global batch under torchrun). ``images`` are
    images, or, on cached features, the batch's positions in the fit split."""
    config, device, progress, ctx = run.config, run.device, run.progress, run.ctx
    global_size, offset = ctx.batch_shard(progress.step_in_epoch, len(run.split.labels), config.batch_size)
    inputs = frozen_inputs(run, images, global_size, offset) if run.frozen else \
        (augment_batch(images, run.aug_generator, global_size, offset) if config.augment else images,)
    inputs = tuple(x.to(device, non_blocking=True) for x in inputs)
    labels = labels.to(device, non_blocking=True)
    with autocast_for(config.precision, device):
        output = run.net(*inputs, labels)  # the labels only feed PI-H2T's feature fusion, if any
    # an empty shard (a last batch smaller than the process count) still joins DDP's all-reduce
    loss = run.objective(output, labels) if len(labels) else output.logits.sum() * 0.0
    if not torch.isfinite(loss):
        raise non_finite_loss_error(loss, progress, config.lr, run.checkpointer)
    run.optimizer.zero_grad(set_to_none=True)
    ctx.scaled_loss(loss, len(labels), global_size).backward()
    run.optimizer.step()
    run.scheduler.step()
    progress.step_done(float(loss.detach()), int((output.logits.detach().argmax(dim=1) == labels).sum()),
                       labels.shape[0], alpha=float(run.model.alpha.detach()))
    run.checkpointer.maybe_save(run.model, run.optimizer, run.scheduler, progress, run.aug_generator)


def frozen_inputs(run: TrainingRun, items: torch.Tensor, global_size: int,
                  offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(φ_{N-1}, φ_N) of a batch through a frozen backbone, each image in the view the augmentation draws (the same
    random numbers as :func:`augment_batch`): looked up in the cache (``items`` are fit-split positions), or, with
    the cache off, computed now for ``items`` (images) exactly as the cache computes them."""
    views = augment_views(len(items), run.aug_generator, global_size, offset) if run.config.augment else \
        torch.zeros(len(items), dtype=torch.long)
    if run.view_features is not None:
        return run.view_features.select(items, views)
    return batch_view_features(run.model, items, views, run.num_views, run.device)


# ---- finish ---------------------------------------------------------------------------------------------------
def finish(run: TrainingRun) -> TrainResult:
    """H2T's re-training stage (if the method has one), evaluation on the test split, run.pt and metrics files."""
    config, ctx, split = run.config, run.ctx, run.split
    stage2 = retrain_heads_h2t(run.model, split.images, split.labels, run.class_counts, config, run.method,
                               run.device) if run.recipe.h2t else None
    metrics = evaluate_model(run.model, run.data, config.eval_batch_size, run.device, config.precision)
    seconds = time.perf_counter() - run.started
    metrics["train_seconds"] = seconds
    metrics["history"] = run.progress.history
    metrics["feature_cache"] = run.feature_cache
    if stage2 is not None:
        metrics["h2t_history"] = stage2
    run_path = run.out_dir / "run.pt"
    if ctx.is_main:  # rank 0 alone writes run.pt and the metrics files
        run_path = write_run_files(run, metrics)
    ctx.barrier()
    return TrainResult(model=run.model, data=run.data, metrics=metrics, history=run.progress.history,
                       run_path=run_path, seconds=seconds)


def write_run_files(run: TrainingRun, metrics: dict) -> Path:
    """The finished run.pt, metrics.json and metrics.md (atomic writes)."""
    run_path = write_run(run.out_dir / "run.pt", replace(run.run_record(), metrics=to_jsonable(metrics)))
    atomic_write_text(json.dumps(to_jsonable(metrics), indent=2) + "\n", run.out_dir / "metrics.json")
    text = metrics_markdown(metrics, title=f"{run.recipe.name} on {run.data.name} (test split, balanced)")
    for name, split in metrics.get("splits", {}).items():
        what = ("an independent i.i.d. draw of the same population" if split["in_population"] else
                "OUT OF POPULATION: drawn from a region the population excludes; no bound covers this error")
        text = text.rstrip("\n") + "\n\n" + metrics_markdown(split, title=f"{name} split ({what})")
    atomic_write_text(text.rstrip("\n") + "\n\n" + alpha_trajectory_markdown(alpha_trajectory(metrics["history"]))
                      + "\n", run.out_dir / "metrics.md")
    return run_path


#: at most this many per-step α values are kept in a run's history (every k-th optimiser step beyond)
ALPHA_TRAJECTORY_POINTS = 2000


def alpha_epoch_fields(progress: Progress, epoch: int, total_steps: int) -> dict:
    """The α entries of epoch ``epoch``'s history record: α before its first optimiser step (``alpha_start``), its
    range over the epoch (``alpha_min`` / ``alpha_max``, every step), and α after every ``alpha_every``-th optimiser
    step of the run that falls in it (``alpha_steps``; every step unless the run has more than
    :data:`ALPHA_TRAJECTORY_POINTS`)."""
    spe = progress.steps_per_epoch
    every = max(1, math.ceil(total_steps / ALPHA_TRAJECTORY_POINTS))
    steps = progress.alpha_steps[epoch * spe:(epoch + 1) * spe]
    start = progress.alpha_start if epoch == 0 else \
        (progress.alpha_steps[epoch * spe - 1] if len(progress.alpha_steps) >= epoch * spe else None)
    seen = [v for v in [start, *steps] if v is not None]
    return {"alpha_start": start, "alpha_min": min(seen) if seen else None, "alpha_max": max(seen) if seen else None,
            "alpha_every": every,
            "alpha_steps": [v for i, v in enumerate(steps, start=epoch * spe + 1) if i % every == 0]}


def alpha_trajectory(history: list[dict]) -> dict:
    """α over the main loop, from the history records: before the first step (``start``), after the last
    (``end``), its range over every step, and the recorded per-step values (``values``, every ``every``-th
    optimiser step). The H2T stage, which re-trains α afterwards, is not part of it (``h2t_history``)."""
    if not history or "alpha_steps" not in history[0]:
        return {"start": None, "end": None, "min": None, "max": None, "steps": 0, "every": 1, "values": []}
    values = [v for h in history for v in h["alpha_steps"]]
    lows = [h["alpha_min"] for h in history if h["alpha_min"] is not None]
    highs = [h["alpha_max"] for h in history if h["alpha_max"] is not None]
    every = history[0]["alpha_every"]
    return {"start": history[0]["alpha_start"], "end": history[-1]["alpha"], "min": min(lows) if lows else None,
            "max": max(highs) if highs else None, "every": every, "values": values}


def alpha_trajectory_markdown(trajectory: dict) -> str:
    """One line for metrics.md: α start → end (min, max) over the optimiser steps."""
    if trajectory.get("start") is None:
        return "Fusion weight α: not recorded."
    every = "every optimiser step" if trajectory["every"] == 1 else f"every {trajectory['every']} optimiser steps"
    return (f"Fusion weight α over training: {trajectory['start']:.4f} → {trajectory['end']:.4f} (min "
            f"{trajectory['min']:.4f}, max {trajectory['max']:.4f}); α after {every} is in metrics.json, "
            f"`history[*].alpha_steps`.")


def retrain_heads_h2t(model: SciLTModel, images: torch.Tensor, labels: torch.Tensor, class_counts: torch.Tensor,
                      config: TrainConfig, method: MethodConfig, device: torch.device) -> list[dict]:
    """H2T's classifier re-training stage (scilt_theory/h2t.py) after the main loop: the CLS features of the
    training images are extracted once with the trained, now frozen backbone (no augmentation), then the heads
    and α are re-trained on class-balanced batches fused with instance-sampled ones. The loss is the dual CE
    without logit adjustment (balanced sampling already removes the prior). Deterministic given the seed."""
    model.train_feature_fusion = None  # PIF belongs to representation learning, not to this stage
    feats = extract_features(model, images, labels, batch_size=config.eval_batch_size, device=device,
                             progress=not config.quiet, desc="H2T features", dtype=torch.float32,
                             store=None if config.feature_store is None else FeatureStore(config.feature_store))
    counts = class_counts.to(device)

    def loss_fn(output, targets):
        return supervised_loss(output, targets, counts, tau=0.0, lam=config.lam)

    return retrain_classifier(model, feats.phi_penult, feats.phi_final, feats.labels, loss_fn, method.h2t,
                              seed=config.seed + 4099, progress=not config.quiet)
