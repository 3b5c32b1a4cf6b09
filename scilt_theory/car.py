"""CAR, the Confusion-Aware Spectral Regulariser (arXiv 2603.16732; authors' code github misswayguy/CAR).

THEORY §6 and docs/PEERS.md ("CAR"). CAR adds to the training loss the spectral norm of a class-frequency-weighted,
exponentially averaged *soft confusion matrix* of the training batches:

``loss = base loss + lam * || C_bar · diag(w) ||_2``.

Conventions (PEERS.md): a confusion matrix is K×K with **rows = predicted class i, columns = true class j**,
and its diagonal is zero (only mistakes count).

* **Soft confusion of one batch** (:func:`soft_confusion`). A sample ``(f, y)`` (logits ``f``, true class
  ``y``) contributes to every row ``i != y`` of column ``y`` the value
  ``g_i(f) · softmax(f / tau)_i`` with the gate ``g_i(f) = sigmoid(f_i - f_y)`` computed on **detached**
  logits (no gradient flows through the gate); column ``j`` is the average of these contributions over the
  batch samples of true class ``j``; a class absent from the batch gives a zero column. Hence every entry is
  ``>= 0`` and every column sum is ``< 1`` (see ``proofs/car_spectral_facts.md``, (e)).
* **EMA across steps** (:class:`CARRegularizer`): ``C_bar <- beta · C_bar.detach() + (1 - beta) · C_t``; the
  first call initialises ``C_bar = C_t.detach()`` (its penalty has a value but no gradient).
* **Class weights** (:func:`car_class_weights`): ``w_j = 1 / sqrt(m_j + r0)`` with ``m_j = n_j / sum_k n_k``
  the training class proportion, normalised to mean 1, then clamped at ``>= 1e-3``.
* **Penalty**: ``spec = sigma_max(C_bar · diag(w))`` (:func:`weighted_spectral_norm`, autograd through the
  singular values), returned as ``lam · spec``. Defaults ``lam = 0.3, tau = 1, r0 = 0.2, beta = 0.9`` (PEERS.md
  and the authors' code; their ViT-S example uses ``beta = 0.5``).

**What is and is not proved here.** CAR's own theorem (worst-class error <= spectral norm of the weighted
confusion matrix + a PAC-Bayes complexity term) was not readable here. The toolkit therefore reports only the
exact spectral facts of THEORY §6, proved in ``proofs/car_spectral_facts.md``: with ``C`` the hard confusion
rates of :func:`confusion_rates` (columns = true classes, diagonal zeroed), the error rate of class ``j`` is the
``j``-th column sum, so the worst-class error is ``||C||_1`` (max column sum), and

``||C||_1 <= sqrt(K) · ||C||_2``,  ``||C||_2 <= sqrt(||C||_1 · ||C||_inf)``,
``||C · diag(w)||_2 <= max_j |w_j| · ||C||_2``

(:func:`spectral_figures`). Any CAR *bound* built from these figures (e.g. a PAC-Bayes term added to them) is
a reconstruction and must be labelled "reconstructed", not attributed to the paper.

**One batch, one process.** The soft confusion couples the samples of a batch (each column is an average over
the batch's samples of that class, and the spectral norm is not additive), so the regulariser is defined on the
batch one process sees; it is not the same quantity when a batch is sharded over several processes.

float16/bfloat16 logits (autocast) are computed in float32 (there is no half-precision SVD); float32 and
float64 logits are computed in their own dtype, on their own device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scilt_theory.constraints import Interval, check_fields, option

__all__ = [
    "CARConfig",
    "CARRegularizer",
    "car_class_weights",
    "confusion_rates",
    "soft_confusion",
    "spectral_figures",
    "weighted_spectral_norm",
]

_HALF = (torch.float16, torch.bfloat16)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_num_classes(num_classes: Any) -> int:
    if not _is_int(num_classes) or int(num_classes) < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}.")
    return int(num_classes)


def _float_matrix(x: Any, name: str) -> torch.Tensor:
    """A floating-point tensor in its own dtype (float16/bfloat16 upcast to float32); rejects other kinds."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch tensor.")
    return x.float() if x.dtype in _HALF else x


def _as_int_labels(labels: Any, name: str, device: Any = None) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        labels = np.asarray(labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {labels.dtype}.")
        labels = torch.as_tensor(labels.astype(np.int64))
    elif labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}.")
    return labels.to(device=device, dtype=torch.long) if device is not None else labels.long()


def _check_label_range(labels: torch.Tensor, k: int, name: str) -> None:
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"{name} must lie in [0, {k - 1}], found values in [{lo}, {hi}].")


def _check_tau(tau: Any) -> float:
    if not _is_real(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive finite number, got {tau!r}.")
    return float(tau)


def soft_confusion(logits: torch.Tensor, targets: torch.Tensor, num_classes: int, tau: float = 1.0) -> torch.Tensor:
    """Soft confusion matrix ``C_t`` of one batch (CAR, PEERS.md; THEORY §6).

    ``C_t[i, j] = (1 / n_j) * sum_{s : y_s = j} sigmoid(f_{s,i} - f_{s,j}) * softmax(f_s / tau)_i`` for
    ``i != j`` and ``n_j >= 1``, where the sigmoid gate is computed on detached logits (a constant for
    autograd); ``C_t[j, j] = 0``; ``C_t[:, j] = 0`` when no sample of the batch has true class ``j``.
    Rows are predicted classes, columns true classes. Every entry is ``>= 0`` and every column sum is ``< 1``
    (``proofs/car_spectral_facts.md``, (e)).

    Parameters
    ----------
    logits : floating-point tensor of shape (n, K)
        Scores of the batch, finite. float32/float64 are computed in their own dtype; float16/bfloat16 in
        float32. ``n = 0`` gives the zero matrix.
    targets : integer tensor of shape (n,)
        True classes in ``[0, K)``.
    num_classes : int
        ``K >= 2``; must equal ``logits.shape[1]``.
    tau : float
        Softmax temperature, positive and finite (the gate does not use it, as in the authors' code).

    Returns
    -------
    tensor of shape (K, K)
        On the logits' device, differentiable with respect to ``logits`` through the softmax only.
    """
    k = _check_num_classes(num_classes)
    logits = _float_matrix(logits, "logits")
    if logits.ndim != 2 or int(logits.shape[1]) != k:
        raise ValueError(f"logits must have shape (n, {k}) for num_classes = {k}, got {tuple(logits.shape)}.")
    n = int(logits.shape[0])
    targets = _as_int_labels(targets, "targets", logits.device)
    if targets.ndim != 1 or int(targets.shape[0]) != n:
        raise ValueError(f"targets must be 1-D with {n} entries (one per row of logits), "
                         f"got shape {tuple(targets.shape)}.")
    tau = _check_tau(tau)
    if n and not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or infinite values.")
    _check_label_range(targets, k, "targets")

    onehot = F.one_hot(targets, k).to(logits.dtype)                      # (n, K): [s, j] = 1{y_s = j}
    probs = F.softmax(logits / tau, dim=1)                               # (n, K), differentiable
    with torch.no_grad():                                                # the gate is a constant for autograd
        detached = logits.detach()
        gate = torch.sigmoid(detached - detached.gather(1, targets[:, None]))
    contrib = gate * probs * (1.0 - onehot)                              # row i = y_s gets nothing
    counts = onehot.sum(dim=0)                                           # n_j
    # (K, n) @ (n, K): [i, j] = sum over samples of class j of contrib[s, i]; absent classes divide 0 by 1
    return (contrib.transpose(0, 1) @ onehot) / counts.clamp_min(1.0)[None, :]


def car_class_weights(class_counts: Sequence[float] | np.ndarray | torch.Tensor, r0: float = 0.2,
                      floor: float = 1e-3) -> torch.Tensor:
    """CAR's class weights ``w_j`` (PEERS.md; authors' code).

    ``m_j = n_j / sum_k n_k`` (class proportions), ``w_j = 1 / sqrt(m_j + r0)``, then ``w <- w / mean(w)``
    (mean 1), then ``w <- max(w, floor)`` (so the mean is ``>= 1`` when the floor binds). Rarer classes get
    larger weights: ``w`` is non-increasing in ``m_j``.

    Parameters
    ----------
    class_counts : K non-negative finite numbers (sequence, numpy array or tensor), not all zero
    r0 : float
        Smoothing of the proportions, finite and ``>= 0``; ``r0 = 0`` needs every count ``> 0``.
    floor : float
        Lower clamp of the normalised weights, finite and ``>= 0``.

    Returns
    -------
    float64 tensor of shape (K,), on the CPU.
    """
    if isinstance(class_counts, torch.Tensor):
        counts = class_counts.detach().to("cpu", torch.float64)
    else:
        try:
            counts = torch.as_tensor(np.asarray(class_counts, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"class_counts must be a sequence of numbers, got {class_counts!r}.") from None
    if counts.ndim != 1 or counts.shape[0] < 1:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}.")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError("class_counts must be finite and non-negative.")
    total = float(counts.sum())
    if total <= 0:
        raise ValueError("class_counts must not all be zero.")
    if not _is_real(r0) or r0 < 0:
        raise ValueError(f"r0 must be a finite number >= 0, got {r0!r}.")
    if not _is_real(floor) or floor < 0:
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}.")
    if r0 == 0 and bool((counts == 0).any()):
        raise ValueError("r0 = 0 needs every class count to be positive (1/sqrt(0) is infinite).")
    m = counts / total
    w = 1.0 / torch.sqrt(m + float(r0))
    return (w / w.mean()).clamp_min(float(floor))


def weighted_spectral_norm(C: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Largest singular value ``||C · diag(w)||_2`` (the CAR penalty before ``lam``; PEERS.md).

    Differentiable (autograd through :func:`torch.linalg.svdvals`). The gradient is finite everywhere: when
    the top singular value is repeated, ``amax`` shares the gradient evenly among the tied values (a valid
    subgradient); the all-zero matrix returns 0 with a zero gradient (0 is a subgradient of the norm at 0).

    Parameters
    ----------
    C : floating-point tensor of shape (K_rows, K), finite
    w : tensor of shape (K,) or None
        Column weights (finite, any sign; CAR's are positive). ``None`` means ``diag(w) = I``. Cast to ``C``'s
        dtype and device.

    Returns
    -------
    0-d tensor in ``C``'s dtype (float32 for float16/bfloat16 input), on ``C``'s device.
    """
    C = _float_matrix(C, "C")
    if C.ndim != 2:
        raise ValueError(f"C must be a 2-D matrix, got shape {tuple(C.shape)}.")
    if not bool(torch.isfinite(C).all()):
        raise ValueError("C contains NaN or infinite values.")
    M = C
    if w is not None:
        w = torch.as_tensor(w).to(device=C.device, dtype=C.dtype)
        if w.ndim != 1 or int(w.shape[0]) != int(C.shape[1]):
            raise ValueError(f"w must have one entry per column of C ({int(C.shape[1])}), got shape {tuple(w.shape)}.")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("w contains NaN or infinite values.")
        M = C * w[None, :]                                               # = C @ diag(w)
    if M.numel() == 0 or not bool(M.detach().ne(0).any()):
        return (M * 0.0).sum()                                           # 0, zero gradient, still in the graph
    return torch.linalg.svdvals(M).amax()


@dataclass(frozen=True)
class CARConfig:
    """Hyper-parameters of the CAR regulariser (PEERS.md "CAR"; defaults from PEERS.md and the authors' code).

    Each field declares what it accepts (scilt_theory/constraints.py); a bad value raises ``ValueError`` with one
    sentence naming the field.
    """

    lam: float = option(0.3, "weight lambda of the spectral penalty added to the loss (loss = base + lambda * "
                        "spec); 0 leaves the loss exactly unchanged. Default 0.3 (PEERS.md, authors' code)",
                        Interval(float, 0, None))
    tau: float = option(1.0, "softmax temperature tau of the soft confusion matrix, softmax(logits / tau). Default 1 "
                        "(PEERS.md, authors' code)", Interval(float, 0, None, closed="neither"))
    r0: float = option(0.2, "smoothing r0 of the class weights w_j = 1/sqrt(m_j + r0), m_j the training class "
                       "proportion (larger r0 = flatter weights). Default 0.2 (PEERS.md, authors' code)",
                       Interval(float, 0, None))
    beta: float = option(0.9, "EMA factor beta of the running soft confusion, C_bar = beta * C_bar + (1 - beta) * "
                         "C_batch. Default 0.9 (PEERS.md, authors' code); the authors' ViT-S example uses 0.5",
                         Interval(float, 0, 1, closed="left"))

    def __post_init__(self) -> None:
        check_fields(self)


class CARRegularizer:
    """The CAR penalty ``lam · ||C_bar · diag(w)||_2`` with the EMA ``C_bar`` of the batch soft confusions.

    Each call, on one batch (PEERS.md; the authors' ``train_one_epoch``):

    1. ``C_t = soft_confusion(logits, targets, K, tau)``;
    2. first call: ``C_bar = C_t.detach()``; later calls: ``C_bar = beta · C_bar.detach() + (1 - beta) · C_t``
       (so the gradient reaches the current batch only, scaled by ``1 - beta``, and the first batch gets none);
    3. ``spec = weighted_spectral_norm(C_bar, w)``, ``w = car_class_weights(class_counts, r0)``;
    4. returns ``lam · spec``. With ``lam = 0`` it returns an exact zero tensor with no graph (the EMA,
       ``last_spec`` and ``steps`` are still updated, without autograd, for monitoring), so
       ``base + penalty == base`` and the gradients are those of the base loss.

    Attributes
    ----------
    ema : tensor of shape (K, K) or None
        The current ``C_bar``, detached (None before the first call); on the device of the last logits.
    last_spec : float
        ``spec`` of the last call (NaN before the first call).
    steps : int
        Number of calls so far.
    weights : float64 tensor of shape (K,)
        ``w`` (CPU).
    """

    def __init__(self, num_classes: int, class_counts: Sequence[float] | np.ndarray | torch.Tensor,
                 config: CARConfig) -> None:
        self.num_classes = _check_num_classes(num_classes)
        if not isinstance(config, CARConfig):
            raise ValueError(f"config must be a CARConfig, got {type(config).__name__}.")
        self.config = config
        self.weights = car_class_weights(class_counts, r0=config.r0)
        if int(self.weights.shape[0]) != self.num_classes:
            raise ValueError(f"class_counts must have one entry per class ({self.num_classes}), "
                             f"got {int(self.weights.shape[0])}.")
        self.ema: torch.Tensor | None = None
        self.last_spec: float = float("nan")
        self.steps: int = 0

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Update the EMA with this batch and return the penalty ``lam · spec`` (a 0-d tensor)."""
        lam, beta = float(self.config.lam), float(self.config.beta)
        with torch.set_grad_enabled(torch.is_grad_enabled() and lam > 0):
            c_t = soft_confusion(logits, targets, self.num_classes, tau=self.config.tau)
            if self.ema is None:
                c_bar = c_t.detach()
            else:
                prev = self.ema.to(device=c_t.device, dtype=c_t.dtype)
                c_bar = beta * prev + (1.0 - beta) * c_t
            spec = weighted_spectral_norm(c_bar, self.weights)
        self.ema = c_bar.detach()
        self.last_spec = float(spec.detach())
        self.steps += 1
        if lam == 0:
            return torch.zeros((), dtype=c_t.dtype, device=c_t.device)
        return lam * spec

    def state_dict(self) -> dict:
        """Tensors and plain Python values only (loadable with ``torch.load(weights_only=True)``).

        Keys: ``"ema"`` (CPU tensor or None), ``"steps"`` (int), ``"last_spec"`` (float) and ``"config"`` (the
        :class:`CARConfig` fields as a dict, for the record).
        """
        return {"ema": None if self.ema is None else self.ema.detach().to("cpu").clone(),
                "steps": int(self.steps), "last_spec": float(self.last_spec), "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``ema``, ``steps`` and ``last_spec`` from :meth:`state_dict` output.

        The saved ``"config"`` is not applied: the regulariser keeps the config it was built with (the caller
        decides whether a changed config is acceptable on resume). The EMA moves to the logits' device on the
        next call.
        """
        if not isinstance(state, dict) or "ema" not in state or "steps" not in state:
            raise ValueError("a CAR state must be a dictionary with the keys 'ema' and 'steps'.")
        ema, steps = state["ema"], state["steps"]
        if not _is_int(steps) or steps < 0:
            raise ValueError(f"the CAR state's steps must be an integer >= 0, got {steps!r}.")
        k = self.num_classes
        if ema is not None:
            if not isinstance(ema, torch.Tensor) or not ema.is_floating_point() or tuple(ema.shape) != (k, k):
                raise ValueError(f"the CAR state's ema must be a floating-point tensor of shape ({k}, {k}) for "
                                 f"K = {k} classes, got {_describe(ema)}.")
            if not bool(torch.isfinite(ema).all()):
                raise ValueError("the CAR state's ema contains NaN or infinite values.")
        if (ema is None) != (int(steps) == 0):
            raise ValueError(f"the CAR state is inconsistent: ema is {'missing' if ema is None else 'present'} "
                             f"after {int(steps)} steps.")
        last_spec = state.get("last_spec", float("nan"))
        if not isinstance(last_spec, (int, float)) or isinstance(last_spec, bool):
            raise ValueError(f"the CAR state's last_spec must be a number, got {last_spec!r}.")
        self.ema = None if ema is None else ema.detach().clone()
        self.steps = int(steps)
        self.last_spec = float(last_spec)


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def confusion_rates(predictions: Any, labels: Any, num_classes: int) -> torch.Tensor:
    """Hard confusion rates: ``C[i, j] = #{s : y_s = j, pred_s = i} / n_j`` for ``i != j``, diagonal zero.

    Rows are predicted classes, columns true classes; a class with ``n_j = 0`` gives a zero column. The
    ``j``-th column sum is the error rate of class ``j`` on this sample, so ``||C||_1`` (max column sum) is the
    worst-class error (``proofs/car_spectral_facts.md``, (a)). The predictions are taken as given: to count ties
    as errors as :func:`scilt_theory.losses.zero_one_error` does, the caller must not map a tie to the true class.

    Parameters
    ----------
    predictions, labels : integer sequences, arrays or tensors of shape (n,), values in ``[0, K)``
    num_classes : int, ``K >= 2``

    Returns
    -------
    float64 tensor of shape (K, K), on the CPU.
    """
    k = _check_num_classes(num_classes)
    pred = _as_int_labels(predictions, "predictions", "cpu")
    lab = _as_int_labels(labels, "labels", "cpu")
    if pred.ndim != 1 or lab.ndim != 1 or pred.shape[0] != lab.shape[0]:
        raise ValueError(f"predictions and labels must be 1-D of the same length, got shapes {tuple(pred.shape)} "
                         f"and {tuple(lab.shape)}.")
    _check_label_range(pred, k, "predictions")
    _check_label_range(lab, k, "labels")
    counts = torch.bincount(pred * k + lab, minlength=k * k).reshape(k, k).to(torch.float64)  # [pred, true]
    counts.fill_diagonal_(0.0)
    n_true = torch.bincount(lab, minlength=k).to(torch.float64)
    return counts / n_true.clamp_min(1.0)[None, :]


def spectral_figures(C: torch.Tensor, w: torch.Tensor | None = None) -> dict:
    """The exact spectral facts of THEORY §6 for a square matrix ``C`` (plain Python numbers).

    Keys: ``norm_1`` (max absolute column sum; the worst-class error when ``C = confusion_rates(...)``),
    ``norm_2`` (largest singular value), ``norm_inf`` (max absolute row sum), ``weighted_norm_2``
    (``||C · diag(w)||_2``; ``norm_2`` when ``w`` is None), ``sqrt_k_norm_2`` (``sqrt(K) · ||C||_2``),
    ``sqrt_norm1_norminf`` (``sqrt(||C||_1 · ||C||_inf)``), ``max_w_norm_2`` (``max_j |w_j| · ||C||_2``; ``w``
    None counts as all ones) and ``worst_column`` (index of the largest column sum, the first one on ties).

    Always ``norm_1 <= sqrt_k_norm_2``, ``norm_2 <= sqrt_norm1_norminf`` and
    ``weighted_norm_2 <= max_w_norm_2`` (``proofs/car_spectral_facts.md``, (b)–(d)), up to rounding.
    Computed in float64 on the CPU, without gradient.
    """
    if isinstance(C, np.ndarray):
        C = torch.as_tensor(C)
    if not isinstance(C, torch.Tensor) or C.is_complex() or C.dtype == torch.bool:
        raise ValueError("C must be a real-valued torch tensor or numpy array.")
    C = C.detach().to("cpu", torch.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 1:
        raise ValueError(f"C must be a non-empty square K×K matrix, got shape {tuple(C.shape)}.")
    if not bool(torch.isfinite(C).all()):
        raise ValueError("C contains NaN or infinite values.")
    k = int(C.shape[0])
    if w is None:
        wv = torch.ones(k, dtype=torch.float64)
    else:
        wv = torch.as_tensor(w.detach() if isinstance(w, torch.Tensor) else np.asarray(w, dtype=np.float64))
        wv = wv.to("cpu", torch.float64)
        if wv.ndim != 1 or int(wv.shape[0]) != k:
            raise ValueError(f"w must have one entry per column of C ({k}), got shape {tuple(wv.shape)}.")
        if not bool(torch.isfinite(wv).all()):
            raise ValueError("w contains NaN or infinite values.")
    col = C.abs().sum(dim=0)
    norm_1 = float(col.max())
    norm_inf = float(C.abs().sum(dim=1).max())
    norm_2 = float(torch.linalg.svdvals(C)[0])
    weighted = norm_2 if w is None else float(torch.linalg.svdvals(C * wv[None, :])[0])
    return {"norm_1": norm_1, "norm_2": norm_2, "norm_inf": norm_inf, "weighted_norm_2": weighted,
            "sqrt_k_norm_2": math.sqrt(k) * norm_2, "sqrt_norm1_norminf": math.sqrt(norm_1 * norm_inf),
            "max_w_norm_2": float(wv.abs().max()) * norm_2, "worst_column": int(torch.argmax(col))}
