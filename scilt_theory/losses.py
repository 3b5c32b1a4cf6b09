"""Margins, the ramp loss and the logit-adjusted cross-entropy (THEORY §0 and §1).

Conventions (THEORY §0):

* margin ``M_f(x, y) = f_y(x) - max_{c != y} f_c(x)``; a tie between the true class and another class
  gives ``M = 0`` and counts as an error, both in :func:`zero_one_error` and in the ramp loss
  (``Phi_rho(0) = 1``), so ``1{error} <= 1{M <= 0} <= Phi_rho(M)`` holds pointwise;
* ramp loss ``Phi_rho(t) = 1`` for ``t <= 0``, ``1 - t/rho`` for ``0 < t < rho``, ``0`` for ``t >= rho``;
* logit adjustment (Menon et al., ICLR 2021): ``CE(f + tau * log pi, y)`` with ``pi`` the training class
  prior (THEORY §1, tau = 1).

The numeric functions accept numpy arrays and torch tensors; they return the same kind they were given
(``margins``/``ramp_loss``) or a Python float (``empirical_margin_loss``/``zero_one_error``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.constraints import check_positive

__all__ = [
    "COUNT_FLOOR",
    "empirical_margin_loss",
    "logit_adjusted_cross_entropy",
    "margins",
    "ramp_loss",
    "zero_one_error",
]

#: Count given to a class with no training sample before taking ``log pi`` in the logit adjustment.
#: A zero count would give ``log 0 = -inf``; with this floor the class gets the finite prior
#: ``COUNT_FLOOR / total`` (far below any observed class, so its logit is pushed down strongly but finitely).
COUNT_FLOOR = 1e-3


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _check_scores_labels(scores: Any, labels: Any) -> tuple[int, int]:
    """Shape, finiteness and range checks shared by the margin functions; returns (n, K)."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D array of shape (n, K), got shape {tuple(scores.shape)}.")
    n, k = int(scores.shape[0]), int(scores.shape[1])
    if k < 2:
        raise ValueError(f"margins need at least 2 classes (K >= 2), got K = {k}.")
    if labels.ndim != 1 or int(labels.shape[0]) != n:
        raise ValueError(
            f"labels must be 1-D with one entry per row of scores ({n}), got shape {tuple(labels.shape)}.")
    if n == 0:
        return n, k
    finite = bool(torch.isfinite(scores).all()) if _is_torch(scores) else bool(np.isfinite(scores).all())
    if not finite:
        raise ValueError("scores contain NaN or infinite values.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        raise ValueError(f"labels must lie in [0, {k - 1}], found values in [{lo}, {hi}].")
    return n, k


def _as_labels(labels: Any, like_torch: bool, device: Any = None) -> Any:
    if like_torch:
        labels = torch.as_tensor(labels, device=device)
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
        return labels.long()
    labels = np.asarray(labels)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    return labels.astype(np.int64)


def margins(scores: Any, labels: Any) -> Any:
    """Multi-class margins ``M_f(x_i, y_i) = f_{y_i}(x_i) - max_{c != y_i} f_c(x_i)`` (THEORY §0).

    Parameters
    ----------
    scores : array or tensor of shape (n, K), K >= 2
        Scores ``f(x_i)`` of a scorer (logits, cosine scores, ...).
    labels : integer array or tensor of shape (n,)
        True classes in ``[0, K)``.

    Returns
    -------
    array or tensor of shape (n,)
        Same kind as ``scores`` (numpy in, numpy out; torch in, torch out, differentiable).
        A tie between the true class and the best other class gives exactly 0 (an error).
    """
    if _is_torch(scores):
        labels = _as_labels(labels, True, scores.device)
        _check_scores_labels(scores, labels)
        true = scores.gather(1, labels[:, None]).squeeze(1)
        # mask the true class with -inf so the max runs over c != y only
        others = scores.masked_fill(F.one_hot(labels, scores.shape[1]).bool(), float("-inf"))
        return true - others.max(dim=1).values
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.number) or np.iscomplexobj(scores):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}.")
    scores = scores.astype(np.float64, copy=False)
    labels = _as_labels(labels, False)
    n, _ = _check_scores_labels(scores, labels)
    rows = np.arange(n)
    true = scores[rows, labels]
    others = scores.copy()
    others[rows, labels] = -np.inf
    return true - others.max(axis=1)


def ramp_loss(margin: Any, rho: float) -> Any:
    """Ramp loss ``Phi_rho`` of THEORY §0, applied elementwise.

    ``Phi_rho(t) = 1`` for ``t <= 0``, ``1 - t/rho`` for ``0 < t < rho``, ``0`` for ``t >= rho``.
    It is (1/rho)-Lipschitz and dominates the 0-1 loss ``1{t <= 0}``.

    Parameters
    ----------
    margin : float, array or tensor
        Margins ``t``.
    rho : float
        Margin parameter, ``rho > 0``.

    Returns
    -------
    Same kind as ``margin`` (a float for a Python number).
    """
    rho = check_positive(rho, "rho")
    if _is_torch(margin):
        if not bool(torch.isfinite(margin).all()):
            raise ValueError("margins contain NaN or infinite values.")
        return (1.0 - margin / rho).clamp(0.0, 1.0)
    arr = np.asarray(margin, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("margins contain NaN or infinite values.")
    # 1 - t/rho clipped to [0, 1] is exactly the piecewise definition (t <= 0 gives >= 1, t >= rho gives <= 0)
    out = np.clip(1.0 - arr / rho, 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def empirical_margin_loss(scores: Any, labels: Any, rho: float) -> float:
    """Empirical margin loss ``R_hat_{S,rho}(f) = (1/n) sum_i Phi_rho(M_f(x_i, y_i))`` (THEORY §0).

    Raises ``ValueError`` for an empty sample (the mean is not defined).
    """
    rho = check_positive(rho, "rho")
    m = margins(scores, labels)
    if int(m.shape[0]) == 0:
        raise ValueError("the empirical margin loss of an empty sample is not defined (n = 0).")
    loss = ramp_loss(m, rho)
    return float(loss.mean()) if not _is_torch(loss) else float(loss.double().mean().item())


def zero_one_error(scores: Any, labels: Any) -> float:
    """Empirical 0-1 error with ties counted as errors: ``(1/n) sum_i 1{M_f(x_i, y_i) <= 0}`` (THEORY §0).

    Consistent with :func:`margins`: a sample is correct only when its true class scores strictly above
    every other class. Raises ``ValueError`` for an empty sample.
    """
    m = margins(scores, labels)
    if int(m.shape[0]) == 0:
        raise ValueError("the error of an empty sample is not defined (n = 0).")
    if _is_torch(m):
        return float((m <= 0).double().mean().item())
    return float(np.mean(m <= 0))


def logit_adjusted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                                 class_counts: torch.Tensor | Sequence[float] | np.ndarray,
                                 tau: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021; THEORY §1).

    ``LA-CE(f, y) = CE(f + tau * log pi, y) = -log softmax(f + tau * log pi)_y``, with
    ``pi_c = max(n_c, COUNT_FLOOR) / sum_k max(n_k, COUNT_FLOOR)`` the training class prior.

    A class with count 0 gets the floor :data:`COUNT_FLOOR` instead of 0 so that ``log pi_c`` stays finite
    (its adjusted logit is lowered by ``tau * log(COUNT_FLOOR / total)``); with ``tau = 0`` or uniform counts
    the loss equals the plain cross-entropy (a constant shift of all logits does not change softmax).

    Parameters
    ----------
    logits : tensor of shape (n, K), floating point
    targets : integer tensor of shape (n,), values in [0, K)
    class_counts : K non-negative numbers (tensor, array or sequence), not all zero
    tau : float, finite, >= 0
    reduction : "mean" | "sum" | "none", as in ``torch.nn.functional.cross_entropy``

    Returns
    -------
    tensor
        Differentiable with respect to ``logits``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError("logits must be a floating-point torch tensor.")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (n, K), got {tuple(logits.shape)}.")
    n, k = logits.shape
    targets = _as_labels(targets, True, logits.device)
    if targets.ndim != 1 or targets.shape[0] != n:
        raise ValueError(f"targets must be 1-D with {n} entries (one per row of logits), got {tuple(targets.shape)}.")
    if n and (int(targets.min()) < 0 or int(targets.max()) >= k):
        raise ValueError(f"targets must lie in [0, {k - 1}].")
    counts = torch.as_tensor(
        class_counts.detach().cpu().numpy() if isinstance(class_counts, torch.Tensor) else np.asarray(class_counts),
        dtype=torch.float64)
    if counts.ndim != 1 or counts.shape[0] != k:
        raise ValueError(f"class_counts must have one entry per class ({k}), got shape {tuple(counts.shape)}.")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError("class_counts must be finite and non-negative.")
    if float(counts.sum()) <= 0:
        raise ValueError("class_counts must not all be zero.")
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a number, got {tau!r}.") from None
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be finite and >= 0, got {tau}.")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
    floored = counts.clamp_min(COUNT_FLOOR)
    log_prior = torch.log(floored / floored.sum()).to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits + tau * log_prior, targets, reduction=reduction)
