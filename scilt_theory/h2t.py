"""H2T feature fusion from head to tail (Li et al., AAAI 2024) and the PI-H2T additions (arXiv 2506.00625).

H2T (authors' code: github Keke921/H2T, ``methods.py``): in the classifier re-training stage the backbone is
frozen and only the classifier trains. Each step takes a class-balanced batch (it gives the labels) and an
instance-sampled batch (mostly head classes), draws ONE random subset of ⌊ρ·D⌋ feature channels and copies
those channels of the instance-sampled features into the balanced ones, the same subset for every row:

    ch        = randperm(D)[:⌊ρ·D⌋]
    fused     = balanced;  fused[:, ch] = instance[:, ch]
    loss      = loss_fn(classifier(fused), labels_of_balanced)

On the SciLT ViT the channels are the dimensions of the CLS features; the same subset is applied to the
penultimate and the final CLS feature (:func:`retrain_classifier`). Default ρ = 0.25.

PI-H2T adds permutation-invariant representation fusion (PIF: "more clustered features, automatic class
margins", no hand-set fusion ratio). **Its exact formula was not available to us: the PIF classes here are a
reconstruction** — a symmetric set function over the same-class features of the batch, behind a swappable
interface (:class:`PermutationInvariantFusion`, registry :data:`PIF_VARIANTS`, :func:`build_pif`). Reports
must say so; :data:`PIF_IS_RECONSTRUCTION` and :data:`PIF_NOTE` exist for that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from scilt_theory.constraints import Choice, Interval, check_fields, check_value, option

__all__ = [
    "H2TConfig",
    "MeanPIF",
    "PIF_IS_RECONSTRUCTION",
    "PIF_NOTE",
    "PIF_VARIANTS",
    "PermutationInvariantFusion",
    "SimilarityPIF",
    "build_pif",
    "class_balanced_indices",
    "h2t_channels",
    "h2t_fuse",
    "instance_indices",
    "retrain_classifier",
]

#: True: the PIF modules below are our reconstruction, not the PI-H2T paper's formula.
PIF_IS_RECONSTRUCTION = True

#: One sentence for reports that show PI-H2T numbers.
PIF_NOTE = ("PIF (PI-H2T, arXiv 2506.00625) is a reconstruction: the paper's exact formula was not available, "
            "so each feature is replaced by a symmetric set function (similarity-weighted or plain mean) of "
            "the same-class features in its batch.")


# ---- validation helpers -------------------------------------------------------------------------------
def _check_rho(rho: Any) -> float:
    """The channel fraction ρ of H2T (not a margin): a number in [0, 1]."""
    return float(check_value(rho, "rho", Interval(float, 0.0, 1.0)))


def _check_generator(generator: Any) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}.")
    return generator


def _check_labels(labels: Any, name: str = "labels") -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D torch tensor of integer class labels.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}.")
    return labels


def _num_channels(dim: int, rho: float) -> int:
    # ⌊ρ·dim⌋ taken exactly on the shortest decimal that round-trips to ρ (repr), i.e. on the value the user
    # wrote: 0.29·100 gives 29 (the binary float 0.29·100 is 28.999999999999996, whose floor is 28). The authors'
    # int(beta * C) agrees with this for their settings (ρ = 0.25 and other dyadic ratios).
    return math.floor(Fraction(repr(float(rho))) * dim)


# ---- H2T: channel subset and fusion -------------------------------------------------------------------
def h2t_channels(dim: int, rho: float, generator: torch.Generator) -> torch.Tensor:
    """Draw the channels H2T copies: ⌊ρ·dim⌋ distinct indices, uniformly at random.

    Parameters
    ----------
    dim : int
        Number of channels D, at least 1.
    rho : float
        Fraction of channels to copy, in [0, 1].
    generator : torch.Generator
        Source of randomness (CPU); the draw is ``torch.randperm(dim, generator=generator)[:k]``.

    Returns
    -------
    LongTensor of shape (k,), k = ⌊ρ·dim⌋
        Distinct indices in [0, dim), on the CPU. ⌊ρ·dim⌋ is computed exactly on the shortest decimal
        representation of ρ (``repr``), so that e.g. ρ = 0.29, dim = 100 gives 29 and not 28 from float error.
    """
    check_value(dim, "dim", Interval(int, 1))
    rho = _check_rho(rho)
    generator = _check_generator(generator)
    k = _num_channels(dim, rho)
    return torch.randperm(dim, generator=generator)[:k]


def _check_channels(channels: Any, dim: int, rho: float) -> torch.Tensor:
    if not isinstance(channels, torch.Tensor) or channels.ndim != 1:
        raise ValueError("channels must be a 1-D torch tensor of channel indices.")
    if channels.is_floating_point() or channels.is_complex() or channels.dtype == torch.bool:
        raise ValueError(f"channels must hold integers, got dtype {channels.dtype}.")
    k = _num_channels(dim, rho)
    if channels.numel() != k:
        raise ValueError(f"channels must hold floor(rho * D) = {k} indices for rho = {rho} and D = {dim}, "
                         f"got {channels.numel()}.")
    if k and (int(channels.min()) < 0 or int(channels.max()) >= dim):
        raise ValueError(f"channels must lie in [0, {dim - 1}].")
    if torch.unique(channels).numel() != k:
        raise ValueError("channels must be distinct.")
    return channels.long()


def h2t_fuse(balanced: torch.Tensor, instance: torch.Tensor, rho: float,
             generator: torch.Generator | None = None, channels: torch.Tensor | None = None) -> torch.Tensor:
    """H2T fusion: the balanced features with a random ⌊ρ·D⌋ subset of channels taken from the instance ones.

    Parameters
    ----------
    balanced : tensor of shape (B, D) or (B, D, ...)
        Features of the class-balanced sample (they keep their labels). Channels lie on dim 1, as in the
        authors' code.
    instance : tensor of the same shape, dtype and device
        Features of the instance-sampled batch.
    rho : float in [0, 1]
        Fraction of channels copied. ρ = 0 gives the balanced values, ρ = 1 the instance values.
    generator : torch.Generator, optional
        Used to draw the subset with :func:`h2t_channels` when ``channels`` is not given.
    channels : LongTensor of shape (⌊ρ·D⌋,), optional
        The subset to copy (distinct indices in [0, D)); its length must equal ⌊ρ·D⌋. Takes precedence
        over ``generator``.

    Returns
    -------
    tensor, same shape as the inputs
        A new tensor: ``out[:, c] = instance[:, c]`` for c in the subset (the same subset for every row),
        ``out[:, c] = balanced[:, c]`` otherwise. The inputs are never modified; the gradient reaches each
        input exactly through the entries it supplies.
    """
    if not isinstance(balanced, torch.Tensor) or not isinstance(instance, torch.Tensor):
        raise ValueError("balanced and instance must be torch tensors.")
    if balanced.ndim < 2:
        raise ValueError(f"features must have shape (B, D) or (B, D, ...), got {tuple(balanced.shape)}.")
    if balanced.shape != instance.shape:
        raise ValueError(f"balanced and instance features must have the same shape, got "
                         f"{tuple(balanced.shape)} and {tuple(instance.shape)}.")
    if balanced.dtype != instance.dtype or balanced.device != instance.device:
        raise ValueError(f"balanced and instance features must share dtype and device, got "
                         f"{balanced.dtype}/{balanced.device} and {instance.dtype}/{instance.device}.")
    rho = _check_rho(rho)
    dim = int(balanced.shape[1])
    if channels is None:
        if generator is None:
            raise ValueError("h2t_fuse needs either channels or a generator to draw them.")
        channels = h2t_channels(dim, rho, generator)
    else:
        channels = _check_channels(channels, dim, rho)
    mask = torch.zeros(dim, dtype=torch.bool, device=balanced.device)
    mask[channels.to(balanced.device)] = True
    mask = mask.view(1, dim, *([1] * (balanced.ndim - 2)))
    # torch.where builds a new tensor and routes each entry's gradient to the input it came from
    return torch.where(mask, instance, balanced)


# ---- samplers -----------------------------------------------------------------------------------------
def class_balanced_indices(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Class-balanced sampling with replacement: a class uniformly, then one of its samples uniformly.

    Parameters
    ----------
    labels : 1-D integer tensor of shape (n,), n >= 1
        Class of every sample. Only classes present in ``labels`` are drawn.
    batch_size : int, >= 1
        Number of draws.
    generator : torch.Generator
        CPU generator; the result is a deterministic function of its state.

    Returns
    -------
    LongTensor of shape (batch_size,)
        Sample indices into ``labels`` (on ``labels``' device).
    """
    labels = _check_labels(labels)
    if labels.numel() == 0:
        raise ValueError("labels must not be empty.")
    check_value(batch_size, "batch_size", Interval(int, 1))
    generator = _check_generator(generator)
    cpu = labels.detach().cpu().long()
    order = torch.argsort(cpu, stable=True)            # sample indices grouped by class (classes ascending)
    _, counts = torch.unique_consecutive(cpu[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    cls = torch.randint(0, counts.numel(), (batch_size,), generator=generator)
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    pos = torch.minimum((u * counts[cls].double()).long(), counts[cls] - 1)
    return order[starts[cls] + pos].to(labels.device)


def instance_indices(num_samples: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Instance sampling: ``batch_size`` indices uniform on [0, num_samples), with replacement (CPU LongTensor)."""
    check_value(num_samples, "num_samples", Interval(int, 1))
    check_value(batch_size, "batch_size", Interval(int, 1))
    generator = _check_generator(generator)
    return torch.randint(0, num_samples, (batch_size,), generator=generator)


# ---- PIF (reconstruction) -----------------------------------------------------------------------------
class PermutationInvariantFusion(nn.Module):
    """Interface of PI-H2T's permutation-invariant representation fusion (PIF) — a RECONSTRUCTION.

    The paper's exact PIF formula was not available; subclasses implement it as a symmetric set function of
    the same-class features in the batch: output row i depends only on f_i and the multiset
    ``{f_j : y_j = y_i}``. Hence permuting the batch permutes the outputs (equivariance), rows of different
    classes never mix, and a class present once in the batch passes through unchanged.

    Subclasses implement :meth:`weights`: a (B, B) matrix W with W[i, j] = 0 whenever y_j ≠ y_i and rows
    summing to 1; the output is ``W @ features``.
    """

    def weights(self, features: torch.Tensor, same_class: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Fuse each row with its same-class rows.

        Parameters
        ----------
        features : floating-point tensor of shape (B, D)
        labels : integer tensor of shape (B,)

        Returns
        -------
        tensor of shape (B, D)
            Differentiable with respect to ``features``.
        """
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
            raise ValueError("features must be a floating-point torch tensor of shape (B, D).")
        labels = _check_labels(labels)
        if labels.shape[0] != features.shape[0]:
            raise ValueError(f"labels must have one entry per row of features ({features.shape[0]}), "
                             f"got {labels.shape[0]}.")
        labels = labels.to(features.device)
        same_class = labels[:, None] == labels[None, :]
        out = self.weights(features, same_class) @ features
        # a singleton class is exactly itself (not merely up to rounding of the weighted sum)
        singleton = same_class.sum(dim=1) == 1
        return torch.where(singleton[:, None], features, out)


class SimilarityPIF(PermutationInvariantFusion):
    """PIF reconstruction (not the paper's formula): similarity-weighted same-class mean.

    ``f'_i = Σ_{j: y_j = y_i} softmax_j(⟨f̂_i, f̂_j⟩ / T) f_j`` with f̂ the L2-normalised rows. The weights come
    from the data (no hand-set fusion ratio) and pull same-class features together.

    Parameters
    ----------
    temperature : float, > 0
        Softmax temperature T (small T: each feature mostly keeps itself and its closest same-class rows).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        check_value(temperature, "temperature", Interval(float, 0.0, None, closed="neither"))
        self.temperature = float(temperature)

    def weights(self, features: torch.Tensor, same_class: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(features, dim=1)
        logits = (unit @ unit.T) / self.temperature
        return torch.softmax(logits.masked_fill(~same_class, float("-inf")), dim=1)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class MeanPIF(PermutationInvariantFusion):
    """PIF reconstruction (not the paper's formula): the plain class mean within the batch.

    ``f'_i = mean_{j: y_j = y_i} f_j`` (no parameters, no fusion ratio).
    """

    def weights(self, features: torch.Tensor, same_class: torch.Tensor) -> torch.Tensor:
        w = same_class.to(features.dtype)
        return w / w.sum(dim=1, keepdim=True)


#: PIF variants by name (all are reconstructions, see :data:`PIF_NOTE`).
PIF_VARIANTS: dict[str, type] = {"similarity": SimilarityPIF, "mean": MeanPIF}


def build_pif(name: str, **kwargs: Any) -> PermutationInvariantFusion:
    """Instantiate the PIF variant ``name`` of :data:`PIF_VARIANTS` with ``kwargs``.

    ``"similarity"`` takes ``temperature``; ``"mean"`` takes no argument. An unknown name or an argument the
    variant does not take raises ``ValueError``.
    """
    if name not in PIF_VARIANTS:
        raise ValueError(f"unknown PIF variant {name!r}; known variants: {', '.join(sorted(PIF_VARIANTS))}.")
    try:
        return PIF_VARIANTS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"PIF variant {name!r} does not take the arguments {sorted(kwargs)}: {err}.") from None


# ---- classifier re-training ---------------------------------------------------------------------------
@dataclass(frozen=True)
class H2TConfig:
    """Settings of H2T's classifier re-training stage (and PI-H2T's PIF choice).

    Each field declares what it accepts (scilt_theory/constraints.py); a bad value raises ``ValueError`` with one
    sentence naming the field.
    """

    rho: float = option(0.25, "fraction of CLS-feature channels copied from the instance-sampled feature",
                        Interval(float, 0, 1))
    epochs: int = option(10, "classifier re-training epochs", Interval(int, 1, None))
    batch_size: int = option(64, "re-training batch size (class-balanced and instance)", Interval(int, 1, None))
    lr: float = option(0.01, "re-training learning rate (SGD, cosine schedule)",
                       Interval(float, 0, None, closed="neither"))
    momentum: float = option(0.9, "SGD momentum", Interval(float, 0, 1, closed="left"))
    weight_decay: float = option(5e-4, "SGD weight decay", Interval(float, 0, None))
    pif: str = option("similarity", "PIF variant used by pi_h2t in stage 1 (a reconstruction)",
                      Choice(tuple(PIF_VARIANTS)))
    pif_temperature: float = option(0.1, "softmax temperature of the similarity PIF",
                                    Interval(float, 0, None, closed="neither"))

    def __post_init__(self) -> None:
        check_fields(self)


def _cosine(total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))
    return factor


def retrain_classifier(model: nn.Module, phi_penult: torch.Tensor, phi_final: torch.Tensor, labels: torch.Tensor,
                       loss_fn: Callable[[Any, torch.Tensor], torch.Tensor], config: H2TConfig, seed: int,
                       progress: bool = False) -> list[dict]:
    """H2T's classifier re-training stage on frozen, precomputed CLS features.

    Only the parameters of ``model`` that require grad and whose names do not start with ``"backbone."``
    train (heads, fusion logit); backbone parameters get ``requires_grad = False`` for the duration (restored
    afterwards, also on error), so they neither change nor receive a gradient.

    Each step, with one ``torch.Generator`` seeded with ``seed`` and in this order, draws a class-balanced
    batch ``b`` (:func:`class_balanced_indices`), an instance-sampled batch ``i`` (:func:`instance_indices`)
    and one channel subset ``ch`` (:func:`h2t_channels` with ``config.rho`` on D), then::

        phi1 = h2t_fuse(phi_penult[b], phi_penult[i], channels=ch)
        phi2 = h2t_fuse(phi_final[b],  phi_final[i],  channels=ch)
        loss = loss_fn(model.output_from_features(phi1, phi2), labels[b])

    SGD (``config.lr``, ``momentum``, ``weight_decay``) with a cosine schedule over all
    ``epochs * ceil(n / batch_size)`` steps.

    Parameters
    ----------
    model : nn.Module with ``output_from_features(phi_penult, phi_final)``
    phi_penult, phi_final : floating-point tensors of shape (n, D)
        Penultimate and final CLS features of the training set (detached; moved to the model's device).
    labels : integer tensor of shape (n,)
    loss_fn : callable (output, targets) -> scalar tensor
    config : H2TConfig
    seed : int
    progress : bool
        Show a tqdm bar per epoch.

    Returns
    -------
    list of dict
        One ``{"epoch", "loss", "lr"}`` per epoch: epoch number from 1, mean step loss, and the learning rate
        after the epoch's last scheduler step (as in ``training.train``). The model is left in eval mode.

    Raises
    ------
    ValueError
        Bad inputs or no trainable head parameter.
    FloatingPointError
        A non-finite loss.
    """
    if not isinstance(config, H2TConfig):
        raise ValueError(f"config must be an H2TConfig, got {type(config).__name__}.")
    check_value(seed, "seed", Interval(int))
    if not callable(getattr(model, "output_from_features", None)):
        raise ValueError("model must have an output_from_features(phi_penult, phi_final) method.")
    for name, phi in (("phi_penult", phi_penult), ("phi_final", phi_final)):
        if not isinstance(phi, torch.Tensor) or phi.ndim != 2 or not phi.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch tensor of shape (n, D).")
    if phi_penult.shape != phi_final.shape:
        raise ValueError(f"phi_penult and phi_final must have the same shape, got {tuple(phi_penult.shape)} "
                         f"and {tuple(phi_final.shape)}.")
    labels = _check_labels(labels)
    n, dim = int(phi_penult.shape[0]), int(phi_penult.shape[1])
    if n == 0 or dim == 0:
        raise ValueError("the features must hold at least one sample and one channel.")
    if labels.shape[0] != n:
        raise ValueError(f"labels must have one entry per feature row ({n}), got {labels.shape[0]}.")
    if not bool(torch.isfinite(phi_penult).all()) or not bool(torch.isfinite(phi_final).all()):
        raise ValueError("the features contain NaN or infinite values.")

    named = list(model.named_parameters())
    params = [p for name, p in named if p.requires_grad and not name.startswith("backbone.")]
    if not params:
        raise ValueError("model has no trainable parameter outside the backbone to re-train.")
    backbone = [(p, p.requires_grad) for name, p in named if name.startswith("backbone.")]
    device = params[0].device
    phi_penult = phi_penult.detach().to(device)
    phi_final = phi_final.detach().to(device)
    labels_cpu = labels.detach().cpu().long()
    targets_all = labels_cpu.to(device)

    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(total_steps))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    try:
        for p, _ in backbone:
            p.requires_grad_(False)
        model.train()
        for epoch in range(config.epochs):
            total = 0.0
            bar = tqdm(range(steps_per_epoch), desc=f"H2T epoch {epoch + 1}/{config.epochs}", leave=False,
                       disable=not progress)
            for _ in bar:
                b = class_balanced_indices(labels_cpu, config.batch_size, generator).to(device)
                i = instance_indices(n, config.batch_size, generator).to(device)
                ch = h2t_channels(dim, config.rho, generator)
                phi1 = h2t_fuse(phi_penult[b], phi_penult[i], config.rho, channels=ch)
                phi2 = h2t_fuse(phi_final[b], phi_final[i], config.rho, channels=ch)
                loss = loss_fn(model.output_from_features(phi1, phi2), targets_all[b])
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise ValueError("loss_fn must return a scalar torch tensor.")
                if not bool(torch.isfinite(loss)):
                    raise FloatingPointError(f"the H2T re-training loss became non-finite ({float(loss.detach())}) in "
                                             f"epoch {epoch + 1}; try a smaller lr (now {config.lr}).")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += float(loss.detach())
            history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, "lr": scheduler.get_last_lr()[0]})
    finally:
        for p, flag in backbone:
            p.requires_grad_(flag)
        model.eval()
    return history
