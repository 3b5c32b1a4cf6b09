"""Multi-process training and feature extraction on torch.distributed, launched by ``torchrun``.

``torchrun --nproc_per_node N -m experiments.train ...`` starts N copies of the command; each reads its rank from
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, set by torchrun), joins the process group (NCCL on
CUDA, gloo on CPU) and trains a :class:`~torch.nn.parallel.DistributedDataParallel` copy of the model.

The contract, so that N processes compute what one process computes (up to floating point):

* data order: one seeded global permutation per epoch, cut into the one-process global batches; rank r takes
  its contiguous part of every global batch (:func:`scilt_theory.data.loaders.make_loader` with ``shard``);
  the per-rank batch is ``batch_size / world_size`` (a ``batch_size`` that ``world_size`` does not divide is
  refused), a short last batch is split as evenly as possible;
* gradient: DDP averages the ranks' gradients; rank r's loss is weighted by ``world_size · n_r / n`` (n_r its
  part of a global batch of n), so the average is the gradient of the global batch mean also for uneven parts.
  ViTs have no batch norm, so nothing else in the forward couples the samples of a batch;
* augmentation: the random choices are drawn for the whole global batch from the shared seeded generator and
  sliced (``augment_batch(..., global_size, offset)``);
* evaluation and feature extraction: each rank runs its contiguous shard, the rows are gathered in rank order,
  so every rank holds the one-process result;
* files (run.pt, metrics, bounds) and log lines come from rank 0 only.

With one process (no ``WORLD_SIZE`` > 1 in the environment) every helper here is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from scilt_theory.data.loaders import shard_range

__all__ = ["DistContext", "current", "env_world_size", "init_from_env", "launch", "shutdown"]


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when absent)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be a whole number, got {os.environ.get('WORLD_SIZE')!r}") from None


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the process group. ``DistContext()`` is the one-process context."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that logs and writes files."""
        return self.rank == 0

    @property
    def shard_spec(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` for :func:`make_loader`'s ``shard``; None with one process."""
        return (self.rank, self.world_size) if self.enabled else None

    # ---- placement -----------------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else ``device`` unchanged."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse a global batch size the ranks cannot share equally."""
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} is the global batch and must be divisible by the number of "
                             f"processes ({self.world_size}); each process takes batch_size / {self.world_size}")

    # ---- sharding ------------------------------------------------------------------------------------
    def shard(self, count: int) -> tuple[int, int]:
        """[start, stop) of this rank's contiguous part of ``count`` items."""
        return shard_range(count, self.rank, self.world_size)

    def batch_shard(self, step: int, num_samples: int, batch_size: int) -> tuple[int, int]:
        """(size of global batch ``step`` of an epoch over ``num_samples`` items, this rank's offset in it)."""
        global_size = min(batch_size, num_samples - step * batch_size)
        return global_size, self.shard(global_size)[0]

    def scaled_loss(self, loss: torch.Tensor, local_size: int, global_size: int) -> torch.Tensor:
        """``loss · world_size · n_r / n``: DDP's gradient average then equals the gradient of the global-batch
        mean loss (``loss`` itself with one process)."""
        if not self.enabled:
            return loss
        return loss * (self.world_size * local_size / global_size)

    # ---- model ---------------------------------------------------------------------------------------
    def wrap(self, model: nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> nn.Module:
        """``DistributedDataParallel(model)`` under torchrun (buffers are not broadcast: a ViT has no running
        statistics), ``model`` itself with one process."""
        if not self.enabled:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # gradients as views of the all-reduce buckets: no second copy of the gradients in memory
        kwargs: dict = dict(device_ids=ids, find_unused_parameters=find_unused_parameters,
                            gradient_as_bucket_view=True)
        newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        kwargs["forward_sync_buffers" if newer else "broadcast_buffers"] = False
        return DistributedDataParallel(model, **kwargs)

    # ---- collectives ---------------------------------------------------------------------------------
    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64); ``values`` with one process."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's ``tensor`` along dim 0 in rank order (all ranks receive the result, on the
        input's device). Parts may differ in length (padded for the collective, trimmed after)."""
        if not self.enabled:
            return tensor
        comm = self._comm_device()
        local = tensor.detach().to(comm).contiguous()
        sizes = torch.zeros(self.world_size, dtype=torch.int64, device=comm)
        sizes[self.rank] = local.shape[0]
        dist.all_reduce(sizes, op=dist.ReduceOp.SUM)
        longest = int(sizes.max())
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[:local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        rows = [p[:int(n)] for p, n in zip(parts, sizes.tolist())]
        return torch.cat(rows).to(tensor.device)

    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()


_CONTEXT = DistContext()
_OWNED = False


def current() -> DistContext:
    """The context of this process (set by :func:`init_from_env`; the one-process context otherwise)."""
    return _CONTEXT


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (no-op with one process).

    The backend is NCCL when ``device`` resolves to CUDA, gloo otherwise. Idempotent.
    """
    global _CONTEXT, _OWNED
    world = env_world_size()
    if world == 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; start multi-process runs with "
                         f"torchrun --nproc_per_node {world} -m ...")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) here; "
                             f"start at most that many processes per node")
        torch.cuda.set_device(local_rank)  # before the group forms, so NCCL binds this rank to its GPU
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        _OWNED = True
    _CONTEXT = DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=dist.get_backend())
    return _CONTEXT


def shutdown() -> None:
    """Leave the process group if :func:`init_from_env` formed it."""
    global _CONTEXT, _OWNED
    if _OWNED and dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT, _OWNED = DistContext(), False


@contextmanager
def launch(device: str = "auto") -> Iterator[DistContext]:
    """``with launch(device) as ctx:`` around a command: join the group torchrun describes, leave it after."""
    ctx = init_from_env(device)
    try:
        yield ctx
    finally:
        shutdown()
