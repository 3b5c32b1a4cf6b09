"""The optimisation settings of a training run (:class:`TrainConfig`), recorded in run.pt.

Each field declares what it accepts (scilt_theory/constraints.py), which also drives the ``experiments.train``
options. The settings say nothing about the machine: whether a CUDA device is there is checked where training
starts (``training.training_device``), so a run trained on a GPU still reads back on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from scilt_theory.constraints import Choice, Interval, NoneOr, Text, check_fields, option

__all__ = ["DEVICES", "OPTIMIZERS", "PRECISIONS", "TrainConfig"]

OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults follow LIFT (SGD, momentum 0.9, wd 5e-4, cosine schedule).

    Each field declares what it accepts (scilt_theory/constraints.py); ``check_fields`` refuses a bad value with
    "<field> must be <what it accepts>, got <value>". ``__post_init__`` adds only the check that combines fields.
    """

    epochs: int = option(20, "number of passes over the training set", Interval(int, 1, None))
    batch_size: int = option(64, "training batch size", Interval(int, 1, None))
    lr: float = option(0.05, "peak learning rate (after warm-up)", Interval(float, 0, None, closed="neither"))
    alpha_lr: float | None = option(
        None, "peak learning rate of the fusion logit a (alpha = sigmoid(a)): its own optimiser parameter group, "
              "without weight decay, on the same warm-up + cosine schedule as every other parameter; none = lr",
        NoneOr(Interval(float, 0, None, closed="neither")))
    optimizer: str = option("sgd", "optimiser", Choice(OPTIMIZERS))
    momentum: float = option(0.9, "SGD momentum (ignored by adamw)", Interval(float, 0, 1, closed="left"))
    weight_decay: float = option(5e-4, "weight decay", Interval(float, 0, None))
    warmup_epochs: float = option(1.0, "linear warm-up length in epochs (0 = none), at most epochs",
                                  Interval(float, 0, None))
    tau: float = option(1.0, "logit-adjustment strength τ (0 = plain CE)", Interval(float, 0, None))
    lam: float = option(1.0, "weight λ of the second head's loss", Interval(float, 0, None))
    augment: bool = option(True, "random flips and 90° rotations of training images")
    holdout_fraction: float = option(
        0.0, "fraction of each class's training images held out from training (stratified, seeded, at least one "
             "image kept for training); needed by `experiments.bounds --mode certified`, which refits the heads and "
             "evaluates the bound on this disjoint part", Interval(float, 0, 1, closed="left"))
    seed: int = option(0, "seed of initialisation, data order and augmentation", Interval(int, None, None))
    device: str = option("auto", "auto picks CUDA when present", Choice(DEVICES))
    eval_batch_size: int = option(256, "batch size for evaluation", Interval(int, 1, None))
    out: str = option("runs/run", "output directory for run.pt, metrics.json, metrics.md", Text())
    quiet: bool = option(False, "no progress bars or per-epoch lines")
    num_workers: int | None = option(
        None, "data-loader worker processes (batches are pinned in page-locked memory on CUDA); none = automatic "
              "(workers only for more than 2048 images read from files); the data order depends on the seed only, "
              "whatever this is", NoneOr(Interval(int, 0, None)))
    compile: bool = option(False, "torch.compile the training forward (first steps are slower while it compiles)")
    precision: str = option(
        "auto", "arithmetic of the training steps: bf16 (bfloat16 autocast, on any device), fp32 (no autocast; "
                "TF32 matmuls on CUDA), auto (bf16 on CUDA, fp32 elsewhere)", Choice(PRECISIONS))
    feature_cache: bool = option(
        True, "when the backbone is frozen (adapter none, no drop path): extract the CLS features of every training "
              "image once (all 8 augmented views when augment is on) and train fusion and heads on them; false "
              "computes the same per-image features at every step instead (same numbers, slower)")
    feature_store: str | None = option(
        None, "folder of a content-addressed store of extracted features (scilt_theory/feature_store.py): runs of "
              "the same frozen backbone and images read them back instead of extracting them again (same numbers); "
              "none = no store", NoneOr(Text()))
    save_every: int = option(
        0, "write the full training state to OUT/run.pt (marked unfinished) every N optimiser steps, for --resume "
           "after a crash or kill; 0 = only the final run.pt", Interval(int, 0, None))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs must be at most epochs ({self.epochs}), got {self.warmup_epochs}")
