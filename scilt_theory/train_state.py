"""Periodic checkpoints and exact resume of a training run (``--save-every N``, ``--resume PATH``).

Where checkpoints go
--------------------
Every N optimiser steps the whole training state is written *to OUT/run.pt itself*, atomically (temp file +
fsync + rename, ``run_record.write_run``), with ``finished: False`` and a ``train_state`` entry. The final
run.pt (``finished: True``, no ``train_state``) replaces it when training ends. So OUT/run.pt is always either
the last good periodic checkpoint or the finished run, never half of a file, and a killed run cannot leave a
stale finished run.pt from an earlier run in the same directory that a later command would mistake for the new
one: ``read_run`` refuses an unfinished file unless asked for one (only ``--resume`` is).

What the state holds (all tensors and plain values, so ``weights_only=True`` loads it)
---------------------------------------------------------------------------------------
- the model's trainable state (``model_state``, the same entry as a finished run), the optimiser's and the LR
  scheduler's ``state_dict``;
- the RNG states at the moment of the save: torch (CPU and every CUDA device), numpy, python ``random`` and the
  augmentation generator;
- the progress: epoch, batches done in it, optimiser steps done, the running loss/accuracy sums of the epoch,
  the per-epoch history, α before the first and after every optimiser step, and the loader generator's state
  *at the start of the epoch*.

Exact resume
------------
A DataLoader draws one base seed and then one permutation from its generator when an epoch's iterator is created,
and nothing else. Resuming restores the generator to its epoch-start state, re-creates the epoch's iterator and
consumes the batches already done (no augmentation, no forward pass: they draw no random numbers), then restores
every other RNG to its state at the save. The remaining batches, augmentations and updates are then the ones of
the uninterrupted run, bit for bit on the same machine (CPU; ``tests/test_resume.py`` kills a real run).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.checkpoint import CheckpointError
from scilt_theory.run_record import RunRecord, TrainState, read_run, write_run

#: TrainConfig fields that may differ between a checkpoint and its resumption (they change no number).
RESUME_FREE_FIELDS = ("out", "quiet", "save_every", "feature_store")


# ---- RNG states ---------------------------------------------------------------------------------------------
def capture_rng(aug_generator: torch.Generator) -> dict[str, Any]:
    """Every random state training draws from, as tensors and plain values (weights-only loadable)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": [int(v) for v in mt_state], "gauss_next": gauss_next},
        "augment": aug_generator.get_state(),
    }


def restore_rng(state: dict[str, Any], aug_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`. CUDA states are restored when CUDA is present (as many as fit)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    aug_generator.set_state(state["augment"])


# ---- progress within a run ------------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where training stands; ``epoch`` is 0-based, ``step_in_epoch`` counts the batches done in it."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    steps_per_epoch: int = 0
    total_loss: float = 0.0
    correct: int = 0
    seen: int = 0
    history: list[dict] = field(default_factory=list)
    alpha_start: float | None = None  #: α before the first optimiser step
    alpha_steps: list[float] = field(default_factory=list)  #: α after each optimiser step, in order
    epoch_loader_state: torch.Tensor | None = None
    pending_rng: dict[str, Any] | None = None  # RNG states to restore once the done batches are skipped

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pending_rng"}
        out["history"] = [dict(h) for h in self.history]
        out["alpha_steps"] = list(self.alpha_steps)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Progress:
        known = {f.name for f in fields(cls)} - {"pending_rng"}
        return cls(**{k: v for k, v in values.items() if k in known})

    def epoch_batches(self, epoch: int, loader: torch.utils.data.DataLoader,
                      aug_generator: torch.Generator) -> Iterator:
        """Iterator over the batches of ``epoch`` still to do (all of them unless resuming inside it)."""
        if self.pending_rng is None:  # a fresh epoch
            self.epoch, self.step_in_epoch = epoch, 0
            self.total_loss, self.correct, self.seen = 0.0, 0, 0
            self.epoch_loader_state = loader.generator.get_state()
            return iter(loader)
        # resuming inside this epoch: same permutation, skip what was done, then the RNGs of the save
        loader.generator.set_state(self.epoch_loader_state)
        batches = iter(loader)
        for _ in range(self.step_in_epoch):
            next(batches)
        restore_rng(self.pending_rng, aug_generator)
        self.pending_rng = None
        return batches

    def step_done(self, loss: float, correct: int, seen: int, alpha: float | None = None) -> None:
        if alpha is not None:
            self.alpha_steps.append(float(alpha))
        self.step_in_epoch += 1
        self.global_step += 1
        self.total_loss += loss * seen
        self.correct += correct
        self.seen += seen


# ---- periodic checkpoints -------------------------------------------------------------------------------------
def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, progress: Progress,
                   aug_generator: torch.Generator) -> dict[str, Any]:
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": capture_rng(aug_generator), "progress": progress.to_dict()}


def _all_finite(tensors: Any) -> bool:
    if isinstance(tensors, torch.Tensor):
        return not tensors.is_floating_point() or bool(torch.isfinite(tensors).all())
    if isinstance(tensors, dict):
        return all(_all_finite(v) for v in tensors.values())
    if isinstance(tensors, (list, tuple)):
        return all(_all_finite(v) for v in tensors)
    return True


class PeriodicCheckpointer:
    """Writes the full training state to ``path`` every ``every`` optimiser steps (0 = never).

    A state with a non-finite weight or optimiser entry is never written: the last good checkpoint stays.
    """

    def __init__(self, path: str | Path, every: int, make_record: Callable[[], RunRecord]) -> None:
        self.path = Path(path)
        self.every = int(every)
        self.make_record = make_record
        self.last_good_step: int | None = None

    def maybe_save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   progress: Progress, aug_generator: torch.Generator) -> bool:
        if not self.every or progress.global_step % self.every:
            return False
        record = self.make_record()
        state = training_state(model, optimizer, scheduler, progress, aug_generator)
        if not (_all_finite(record.model_state) and _all_finite(state["optimizer"]["state"])):
            raise FloatingPointError(f"non-finite weights after optimiser step {progress.global_step} (epoch "
                                     f"{progress.epoch + 1}); lower the learning rate. {self.last_good()}")
        write_run(self.path, replace(record, finished=False, train_state=TrainState(**state)))
        self.last_good_step = progress.global_step
        return True

    def last_good(self) -> str:
        """One sentence naming the last good checkpoint (for error messages)."""
        if self.last_good_step is None:
            hint = "" if self.every else " (use --save-every N to keep one)"
            return f"No checkpoint of this run was written{hint}."
        return f"The last good checkpoint, {self.path} (optimiser step {self.last_good_step}), was kept intact."


def non_finite_loss_error(loss: torch.Tensor, progress: Progress, lr: float,
                          checkpointer: PeriodicCheckpointer) -> FloatingPointError:
    """The one-line error for a NaN/inf training loss, naming the step and the last good checkpoint."""
    where = f"epoch {progress.epoch + 1}, batch {progress.step_in_epoch + 1}/{progress.steps_per_epoch}"
    return FloatingPointError(
        f"non-finite training loss ({float(loss.detach())}) at {where} (optimiser step {progress.global_step + 1}); "
        f"lower the learning rate (lr={lr}). {checkpointer.last_good()}")


# ---- resume ---------------------------------------------------------------------------------------------------
def _differences(saved: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """The settings of ``current`` that differ from ``saved`` (a field the checkpoint's version did not have yet
    holds its default there: what the checkpoint ran with, filled in when the record is read, run_record.py)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore or key not in current:  # a field this version does not know cannot be compared
            continue
        a, b = saved.get(key, "<absent>"), current[key]
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if a != b:
            out.append(f"{key} {b!r} (checkpoint: {a!r})")
    return out


def _method_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Differences of the method and its CAR / H2T settings (a run from before methods existed is SciLT)."""
    saved = saved or {"name": "scilt"}
    out = [] if saved.get("name") == current.get("name") else \
        [f"method {current.get('name')!r} (checkpoint: {saved.get('name')!r})"]
    for part in ("car", "h2t"):
        if part in saved:
            out += [f"{part}_{d}" for d in _differences(saved[part], current.get(part, {}))]
    return out


def load_for_resume(path: str | Path, *, data_config: dict[str, Any], model_config: dict[str, Any],
                    train_config: dict[str, Any], method_config: dict[str, Any] | None = None) -> RunRecord:
    """Load an unfinished run.pt and check that it was made with these settings (except RESUME_FREE_FIELDS).

    Raises
    ------
    CheckpointError
        A missing/corrupt/foreign/future file, a finished run, or different settings (named in the message).
    """
    record = read_run(path, allow_unfinished=True)
    if record.finished or record.train_state is None:
        raise CheckpointError(f"{path} is a finished run, not a periodic checkpoint; there is nothing to resume "
                              f"(train with --save-every N to get resumable checkpoints)")
    diffs = (_differences(asdict(record.data_config), data_config)
             + _differences(record.model_config.to_dict(), model_config)
             + _differences(asdict(record.train_config), train_config, RESUME_FREE_FIELDS)
             + (_method_differences(record.method_config.to_dict(), method_config) if method_config else []))
    if diffs:
        raise CheckpointError(f"cannot resume {path} with settings other than its own: {'; '.join(diffs)} "
                              f"(only --out, --quiet, --save-every and --feature-store may change)")
    return record


def restore_training(record: RunRecord, model: Any, optimizer: torch.optim.Optimizer,
                     scheduler: Any, steps_per_epoch: int) -> Progress:
    """Load model, optimiser and scheduler state from ``record``; returns the progress to continue from (its
    RNG states are restored by :meth:`Progress.epoch_batches` once the done batches are skipped)."""
    state = record.train_state
    try:
        model.load_trainable_state_dict(record.model_state)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        progress = Progress.from_dict(state.progress)
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the training state in the checkpoint does not fit this run: {first[:200]}") \
            from None
    if progress.steps_per_epoch != steps_per_epoch:
        raise CheckpointError(f"the checkpoint has {progress.steps_per_epoch} batches per epoch but this data "
                              f"gives {steps_per_epoch}; it was made from other data")
    progress.pending_rng = state.rng
    return progress
