"""Empirical Rademacher complexity (ERC) of norm-bounded linear classes, finite classes and the coupled SciLT class.

Conventions (THEORY §0): no absolute value, factor ``1/n``,

    R_hat_S(F)   = E_sigma sup_{f in F} (1/n) sum_i sigma_i f(x_i),            sigma_i uniform +-1,
    R_hat^v_S(F) = E_Sigma sup_{f in F} (1/n) sum_i sum_c Sigma_ic f_c(x_i),   Sigma in {+-1}^{n x K}.

Linear classes on a feature matrix ``Psi`` (n x d) (THEORY §1):

* Frobenius ball ``W_F(B) = {W in R^{K x d}: ||W||_F <= B}``: per draw ``sup = B ||Psi^T Sigma||_F``, so
  ``R_hat^v = (B/n) E ||Psi^T Sigma||_F``;
* row ball ``W_row(B) = {||w_c||_2 <= B for all c}``: the sup separates over the rows and every column of
  ``Sigma`` has the same law, so ``R_hat^v = (B K/n) E ||Psi^T sigma||_2`` with ``sigma in {+-1}^n``;
* K = 1: both are the scalar l2 ball, ``R_hat = (B/n) E ||Psi^T sigma||_2``.

Estimators (THEORY §5):

* ``closed``: the Jensen / Khintchine-Kahane envelope of THEORY §3a (Lemma 5.2(a)),
  ``(B/n) sqrt(K sum_i ||psi_i||^2 / 2) <= R_hat^v(W_F(B)) <= (B/n) sqrt(K sum_i ||psi_i||^2)`` and, for the
  row ball, ``(B K/n) sqrt(sum_i ||psi_i||^2 / 2) <= R_hat^v <= (B K/n) sqrt(sum_i ||psi_i||^2)``;
  the constant ``1/sqrt 2`` is the optimal Khintchine-Kahane constant (Latala-Oleszkiewicz 1994);
* ``mc``: m i.i.d. sign draws, one matmul per chunk of draws, mean and standard error, and the McDiarmid
  certificate of THEORY §5 (each sign moves one draw by at most ``2 B ||psi_i||/n``):
  ``R_hat^v(W_F(B)) <= R_m + (B/n) sqrt(2 K sum_i ||psi_i||^2 ln(1/delta_mc) / m)`` and
  ``R_hat^v(W_row(B)) <= R_m + (B K/n) sqrt(2 sum_i ||psi_i||^2 ln(1/delta_mc) / m)`` w.p. >= 1 - delta_mc;
* ``exact``: enumeration of all sign vectors, using that every per-draw sup here is even in sigma (and, for
  K > 1, even in every column of Sigma), so only sign patterns with a fixed first sign are visited;
* ``cvxpy``: the per-draw sup solved as a convex programme (an independent second method, and the only one
  for classes with coupled or intersected constraints: the coupled SciLT class, ball intersected with a
  distance-to-initialisation ball).

Sign draws come from a seeded CPU ``torch.Generator``: 64 random bits per int64 word, turned into +-1 in the
matmul dtype by a 256 x 8 look-up table on the features' device, so sign generation costs far less than a
``torch.randint`` per sign. The CPU stream is serial, so draw ``j`` has the same signs whatever the chunk size
(memory budget) is and whatever the device: features on CUDA get their words generated on the host, copied
asynchronously from page-locked memory (8 bytes per 64 signs), and the matmul runs on the GPU while the host
draws the next chunk. The MC, cvxpy and :func:`rademacher_signs` draws with the same seed coincide, on CPU and GPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from scilt_theory.bounds import check_norm, envelope
from scilt_theory.codec import to_jsonable
from scilt_theory.constraints import check_choice, check_count, check_delta, check_nonneg
from scilt_theory.erc import ErcSummary

__all__ = [
    "DEFAULT_MAX_EXACT_SIGNS",
    "LIMITS",
    "EstimatorLimits",
    "independent_signs",
    "select_estimator",
    "DEFAULT_MEMORY_BUDGET",
    "CoupledResult",
    "closed_form_bounds",
    "coupled_sup_closed",
    "coupled_sup_cvxpy",
    "linear_sup_closed",
    "linear_sup_cvxpy",
    "massart_bound",
    "mc_certificate",
    "mc_deviation",
    "mcdiarmid_deviation",
    "rademacher_ball_intersection",
    "rademacher_coupled_scilt",
    "rademacher_finite",
    "rademacher_finite_vector",
    "rademacher_linear",
    "rademacher_signs",
]

METHODS = ("closed", "mc", "exact", "cvxpy", "auto")


@dataclass(frozen=True)
class EstimatorLimits:
    """The one set of limits on exact enumeration (THEORY §5: "when the number of independent signs is <= ~24").

    ``auto_exact_signs``: the estimator "auto" enumerates every sign pattern exactly up to this many independent
    signs (the tail classes) and uses certified Monte Carlo beyond. ``max_exact_signs``: an explicit "exact" refuses
    beyond this many (2^24 patterns take seconds; 2^30 would take hours).
    """

    auto_exact_signs: int = 22
    max_exact_signs: int = 24


#: The limits every estimator choice in the toolkit uses.
LIMITS = EstimatorLimits()
#: Largest number of independent signs ``exact`` enumerates by default.
DEFAULT_MAX_EXACT_SIGNS = LIMITS.max_exact_signs


def independent_signs(n: int, num_outputs: int, norm: str) -> int:
    """Independent Rademacher signs of one draw (THEORY §5): n for the row class (one σ ∈ {±1}^n per draw, the
    K outputs share it) and for K = 1; n·K for the Frobenius class and the coupled class (Σ ∈ {±1}^{n×K})."""
    return n if norm == "row" else n * num_outputs


def select_estimator(method: str, num_signs: int, n_draws: int = 1, limits: EstimatorLimits = LIMITS) -> str:
    """The estimator a request resolves to (THEORY §5); every "auto" in the toolkit goes through here.

    An explicit method is returned unchanged. "auto": the closed form when ``n_draws == 0``, exact enumeration when
    ``num_signs <= limits.auto_exact_signs``, certified Monte Carlo otherwise.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if method != "auto":
        return method
    if n_draws == 0:
        return "closed"
    return "exact" if num_signs <= limits.auto_exact_signs else "mc"
#: Working-memory budget of one chunk of sign draws or sign patterns.
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: Alpha grid the coupled "cvxpy" method uses when the class allows every alpha in [0, 1].
CVXPY_ALPHA_GRID = tuple(float(a) for a in np.linspace(0.0, 1.0, 11))


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoupledResult:
    """ERC of the coupled SciLT class with the Lemma 5.1 sum on the same draws (THEORY §2).

    ``value``: R_hat^v of the class reachable by one (W1, W2, alpha); ``sum_value``: R_hat^v(F_{N-1}) +
    R_hat^v(F_N) with row radii 2s and s (the alpha-worst cases), on the same sign draws; ``ratio`` =
    value / sum_value (<= 1, the tightness of Lemma 5.1; None when sum_value = 0).
    """

    value: float = field(metadata={"help": "R_hat^v of the coupled class (exact, or MC/cvxpy mean)"})
    stderr: float = field(metadata={"help": "standard error of value (0.0 for exact)"})
    upper: float = field(metadata={"help": "valid upper value (mc: w.p. >= 1 - delta_mc; cvxpy: closed sum)"})
    sum_value: float = field(metadata={"help": "Lemma 5.1 sum R(F_{N-1}) + R(F_N) on the same draws"})
    sum_stderr: float = field(metadata={"help": "standard error of sum_value"})
    ratio: float | None = field(metadata={"help": "value / sum_value (None when sum_value = 0)"})
    method: str = field(metadata={"help": "exact | mc | cvxpy"})
    n: int = field(metadata={"help": "number of samples"})
    num_outputs: int = field(metadata={"help": "K, number of classes"})
    scale: float = field(metadata={"help": "cosine scale s"})
    n_draws: int | None = field(default=None, metadata={"help": "sign draws (None for exact)"})
    delta_mc: float | None = field(default=None, metadata={"help": "failure probability of the MC certificate"})
    alpha_grid: tuple[float, ...] | None = field(default=None, metadata={"help": "alpha grid; None = [0, 1]"})

    def to_dict(self) -> dict:
        """JSON-friendly dictionary (non-finite floats become None)."""
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------

def _as_matrix(x: Any, name: str) -> torch.Tensor:
    """A finite n x d (n, d >= 1) floating tensor; torch tensors keep their device and floating dtype."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise ValueError(f"{name} must be real, got a complex tensor.")
        if not t.is_floating_point():
            t = t.to(torch.float64)
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise ValueError(f"{name} must be an array of numbers ({exc}).") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d), got shape {tuple(t.shape)}.")
    if t.shape[0] == 0:
        raise ValueError(f"{name} has no rows (n = 0); an empirical Rademacher complexity needs >= 1 sample.")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no columns (d = 0); give at least one feature.")
    t = t.contiguous()
    # A NaN or inf entry makes its row norm non-finite; a norm can also overflow in the features' dtype, so
    # only then is the (slower) element-wise check needed.
    if not bool(torch.isfinite(torch.linalg.vector_norm(t, dim=1)).all()) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values; clean the features first.")
    return t


def _check_budget(budget: Any) -> int:
    return check_count(budget, "memory_budget_bytes", 1)


def _check_exact(num_signs: int, max_exact_signs: int) -> None:
    if num_signs > max_exact_signs:
        raise ValueError(
            f"exact enumeration needs 2^{num_signs} sign patterns ({num_signs} independent signs), more than "
            f"max_exact_signs={max_exact_signs} allows; use method=\"mc\" (or raise max_exact_signs).")


def _row_norms(psi: torch.Tensor) -> torch.Tensor:
    """||psi_i||_2 as float64 (computed in the features' dtype, which is what the matmuls see; in float64 if
    that overflows)."""
    norms = torch.linalg.vector_norm(psi, dim=1).to(torch.float64)
    if not bool(torch.isfinite(norms).all()):
        norms = torch.linalg.vector_norm(psi.to(torch.float64), dim=1)
    return norms


def _sum_sq(psi: torch.Tensor) -> float:
    """sum_i ||psi_i||^2 (float64)."""
    return float(_row_norms(psi).square().sum())


# ----------------------------------------------------------------------------------------------------------
# Closed forms and certificates (THEORY §3a, §5)
# ----------------------------------------------------------------------------------------------------------

def closed_form_bounds(features: Any, radius: float, num_outputs: int = 1, norm: str = "frobenius"
                       ) -> tuple[float, float]:
    """The envelope of Lemma 5.2(a) (THEORY §3a) on a feature matrix: ``(lower, upper)`` of
    :func:`scilt_theory.bounds.envelope` with ``S2 = sum_i ||psi_i||^2`` of its rows (the formula lives there)."""
    psi = _as_matrix(features, "features")
    return envelope(_sum_sq(psi), psi.shape[0], radius, num_outputs, norm)


def mc_deviation(features: Any, radius: float, *, num_outputs: int = 1, norm: str = "frobenius",
                 n_draws: int, delta_mc: float) -> float:
    """McDiarmid deviation term of THEORY §5 for m = ``n_draws`` draws.

    Frobenius: ``(B/n) sqrt(2 K sum_i ||psi_i||^2 ln(1/delta_mc) / m)``; row (one sigma in {+-1}^n per draw,
    scaled by K): ``(B K/n) sqrt(2 sum_i ||psi_i||^2 ln(1/delta_mc) / m)``.
    """
    psi = _as_matrix(features, "features")
    b = check_nonneg(radius, "radius")
    k = check_count(num_outputs, "num_outputs")
    m = check_count(n_draws, "n_draws")
    return _mc_dev(_sum_sq(psi), psi.shape[0], b, k, check_norm(norm), m, check_delta(delta_mc, "delta_mc"))


def mcdiarmid_deviation(sum_sq_differences: float, n_draws: int, delta: float) -> float:
    """The one McDiarmid step of every Monte Carlo certificate (THEORY §5; proofs/mc_certificate.md).

    The mean of m i.i.d. draws of a function of independent signs, each sign moving one draw by at most c_j, is below
    its expectation by more than ``sqrt(sum_j c_j^2 ln(1/delta) / (2m))`` with probability at most delta (each draw's
    sign moves the mean by c_j/m, and there are m draws).
    """
    return math.sqrt(sum_sq_differences * math.log(1.0 / delta) / (2.0 * n_draws))


def _mc_dev(sum_sq: float, n: int, radius: float, k: int, norm: str, m: int, delta: float) -> float:
    # Frobenius: each of the nK signs moves a draw by <= 2B||psi_i||/n; row (one sigma per draw, scaled by K): each
    # of the n signs by <= 2BK||psi_i||/n
    per_sign = 4.0 * radius ** 2 * sum_sq / n ** 2
    return mcdiarmid_deviation(per_sign * (k if norm == "frobenius" else k * k), m, delta)


def mc_certificate(estimate: float, features: Any, radius: float, *, num_outputs: int = 1,
                   norm: str = "frobenius", n_draws: int, delta_mc: float) -> float:
    """Certified MC upper value (THEORY §5, McDiarmid): with probability >= 1 - delta_mc over the draws,

    ``R_hat^v <= estimate + mc_deviation(...)``, e.g. ``R_m + (B/n) sqrt(2 K sum_i ||psi_i||^2 ln(1/delta_mc)/m)``
    for the Frobenius ball. ``min(closed form, certificate)`` is the valid upper value :func:`rademacher_linear`
    reports.
    """
    return float(estimate) + mc_deviation(features, radius, num_outputs=num_outputs, norm=norm,
                                          n_draws=n_draws, delta_mc=delta_mc)


def massart_bound(values: Any) -> float:
    """Massart's finite-class lemma (THEORY §7): ``R_hat(A) <= max_a ||a||_2 sqrt(2 ln |A|) / n``."""
    a = _as_matrix(values, "values").to(torch.float64)
    return float(torch.linalg.vector_norm(a, dim=1).max()) * math.sqrt(2.0 * math.log(a.shape[0])) / a.shape[1]


# ----------------------------------------------------------------------------------------------------------
# Sign draws
# ----------------------------------------------------------------------------------------------------------

def _sign_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """256 x 8 table: row b holds the signs of the 8 bits of byte b (bit 1 -> +1, bit 0 -> -1)."""
    bits = (torch.arange(256, device=device)[:, None] >> torch.arange(8, device=device)) & 1
    return (2 * bits - 1).to(dtype)


class _SignStream:
    """Draws of ``columns`` sign vectors of length n, returned as a (draws, columns, n) strided view.

    Each (draw, column) consumes ``ceil(n/64)`` random int64 words of a serial CPU generator, so the signs of
    draw j depend neither on how the draws are chunked nor on the device (words are copied to an accelerator).
    """

    def __init__(self, n: int, columns: int, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.n, self.columns, self.device, self.dtype = n, columns, device, dtype
        self.words = -(-n // 64)
        self.width = 64 * self.words
        self.gen = torch.Generator()  # CPU: Philox on CUDA would give chunk-size-dependent streams
        self.gen.manual_seed(int(seed))
        self.table = _sign_table(dtype, device)
        self.via_host = device.type != "cpu"  # words drawn on the host and copied to the device
        self._capacity = 0

    @staticmethod
    def bytes_per_draw(n: int, columns: int, itemsize: int) -> int:
        words = -(-n // 64)
        return columns * words * (8 + 8 * 4 + 64 * itemsize)

    def next(self, draws: int) -> torch.Tensor:
        if draws > self._capacity:
            nw = draws * self.columns * self.words
            self._words = torch.empty(nw, dtype=torch.int64, device=self.device)
            self._index = torch.empty(8 * nw, dtype=torch.int32, device=self.device)
            self._signs = torch.empty(8 * nw, 8, dtype=self.dtype, device=self.device)
            self._capacity = draws
        nw = draws * self.columns * self.words
        if not self.via_host:
            words = self._words[:nw].random_(-2**63, None, generator=self.gen)
        else:
            # pinned: the copy is asynchronous, so the device computes the previous chunk meanwhile; the
            # caching host allocator keeps this block until the copy has finished.
            host = torch.empty(nw, dtype=torch.int64, pin_memory=self.device.type == "cuda")
            words = self._words[:nw]
            words.copy_(host.random_(-2**63, None, generator=self.gen), non_blocking=True)
        index = self._index[:8 * nw]
        index.copy_(words.view(torch.uint8))
        signs = torch.index_select(self.table, 0, index, out=self._signs[:8 * nw])
        return signs.view(draws, self.columns, self.width)[:, :, :self.n]


#: On CPU a chunk of signs that stays in cache is faster than one big buffer (measured: MC/matmul time ratio
#: 1.3 instead of 1.8 at n=5000, d=192), as long as the matmul keeps enough rows to run at full speed.
_CPU_CHUNK_BYTES = 16 * 2**20
_CPU_MIN_CHUNK_DRAWS = 256


def _chunk_draws(per_draw_bytes: int, budget: int, n_draws: int, device: torch.device | None = None) -> int:
    """Draws per chunk: at most ``budget`` bytes of working memory; on CPU also about 16 MiB (>= 256 draws)."""
    per_draw = max(1, per_draw_bytes)
    chunk = budget // per_draw
    if device is not None and device.type == "cpu":
        chunk = min(chunk, max(_CPU_MIN_CHUNK_DRAWS, _CPU_CHUNK_BYTES // per_draw))
    return int(max(1, min(n_draws, chunk)))


def rademacher_signs(n: int, n_draws: int, *, num_columns: int = 1, seed: int = 0, device: Any = "cpu",
                     dtype: torch.dtype = torch.float32, chunk_draws: int | None = None
                     ) -> Iterator[torch.Tensor]:
    """The sign draws the MC and cvxpy estimators use, as tensors of shape (chunk, num_columns, n).

    Draw j is ``Sigma_j^T`` (``Sigma_j`` in {+-1}^{n x num_columns}). Frobenius and coupled estimators use
    ``num_columns = K``, the row estimator ``num_columns = 1`` (THEORY §5). Same seed => same signs (on CPU
    also whatever ``chunk_draws`` is).
    """
    n = check_count(n, "n")
    m = check_count(n_draws, "n_draws")
    cols = check_count(num_columns, "num_columns")
    stream = _SignStream(n, cols, seed, torch.device(device), dtype)
    step = m if chunk_draws is None else check_count(chunk_draws, "chunk_draws")
    for start in range(0, m, step):
        yield stream.next(min(step, m - start)).clone()


def _mc_loop(n: int, columns: int, n_draws: int, seed: int, device: torch.device, dtype: torch.dtype,
             extra_bytes_per_draw: int, budget: int, kernel: Callable[[torch.Tensor], torch.Tensor]
             ) -> torch.Tensor:
    """Run ``kernel`` on chunks of sign draws (c, columns, n); return its per-draw float64 outputs, stacked."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_draw = _SignStream.bytes_per_draw(n, columns, itemsize) + extra_bytes_per_draw
    chunk = _chunk_draws(per_draw, budget, n_draws, device)
    stream = _SignStream(n, columns, seed, device, dtype)
    outs = []
    for start in range(0, n_draws, chunk):
        outs.append(kernel(stream.next(min(chunk, n_draws - start))))
    return torch.cat(outs)


def _mean_stderr(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt m) in float64; stderr is NaN for a single draw."""
    v = values.to(torch.float64)
    m = v.shape[0]
    mean = float(v.mean())
    if m < 2:
        return mean, float("nan")
    return mean, float(v.std(correction=1)) / math.sqrt(m)


# ----------------------------------------------------------------------------------------------------------
# Exact enumeration of sign patterns (quadratic forms p^T G p, p in {+-1}^n, p_0 = +1)
# ----------------------------------------------------------------------------------------------------------

def _bit_signs(count: int, width: int, device: torch.device) -> torch.Tensor:
    """(count, width) float64: row t holds the signs of the bits of t (bit 0 -> +1, bit 1 -> -1)."""
    t = torch.arange(count, device=device, dtype=torch.int64)
    bits = (t[:, None] >> torch.arange(width, device=device, dtype=torch.int64)) & 1
    return (1 - 2 * bits).to(torch.float64)


def _pattern_quadratics(grams: torch.Tensor, budget: int) -> Iterator[torch.Tensor]:
    """Yield chunks (c, F) of ``p^T G_f p`` over all p in {+-1}^n with p_0 = +1, for the F Gram matrices
    ``grams`` (F, n, n), in pattern order. Meet in the middle: p = (h, l), p^T G p = h^T G_hh h + l^T G_ll l
    + 2 h^T G_hl l, so one small matmul per chunk instead of n^2 work per pattern.
    """
    f, n, _ = grams.shape
    device = grams.device
    a = (n + 1) // 2                      # head positions 0..a-1, position 0 fixed to +1
    b = n - a
    heads = torch.cat([torch.ones(2 ** (a - 1), 1, dtype=torch.float64, device=device),
                       _bit_signs(2 ** (a - 1), a - 1, device)], dim=1)          # (H, a)
    tails = _bit_signs(2 ** b, b, device)                                        # (L, b)
    g_hh, g_hl, g_ll = grams[:, :a, :a], grams[:, :a, a:], grams[:, a:, a:]
    q_head = ((heads @ g_hh) * heads).sum(-1)                                    # (F, H)
    q_tail = ((tails @ g_ll) * tails).sum(-1)                                    # (F, L)
    cross = heads @ g_hl                                                         # (F, H, b)
    rows = max(1, budget // (2 ** b * f * 8 * 4))
    for start in range(0, heads.shape[0], rows):
        stop = min(heads.shape[0], start + rows)
        q = q_head[:, start:stop, None] + q_tail[:, None, :] + 2.0 * (cross[:, start:stop] @ tails.T)
        yield q.reshape(f, -1).T


def _column_combinations_mean(table_chunks: Iterator[torch.Tensor], columns: int,
                              reducer: Callable[[torch.Tensor], torch.Tensor], budget: int) -> torch.Tensor:
    """Mean over all ``P^columns`` choices (p_1..p_K) of per-column pattern rows of ``reducer(sum_c T[p_c])``.

    ``T`` (P, F) is given in chunks; with one column the chunks are reduced as they come (no full table).
    """
    if columns == 1:
        total, count = None, 0
        for chunk in table_chunks:
            s = reducer(chunk).sum(0)
            total = s if total is None else total + s
            count += chunk.shape[0]
        return total / count
    table = torch.cat(list(table_chunks))
    p, f = table.shape
    combos = p ** columns
    step = max(1, budget // (f * 8 * 4 + 16))
    total = None
    for start in range(0, combos, step):
        idx = torch.arange(start, min(combos, start + step), device=table.device, dtype=torch.int64)
        acc = torch.zeros(idx.shape[0], f, dtype=table.dtype, device=table.device)
        for _ in range(columns):
            acc += table[idx % p]
            idx = idx // p
        s = reducer(acc).sum(0)
        total = s if total is None else total + s
    return total / combos


def _gram(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    x64 = x.to(torch.float64)
    if y is None:
        return x64 @ x64.T
    g = x64 @ y.to(torch.float64).T
    return 0.5 * (g + g.T)  # p^T X Y^T p only sees the symmetric part


# ----------------------------------------------------------------------------------------------------------
# Linear classes
# ----------------------------------------------------------------------------------------------------------

def _linear_exact_mean(psi: torch.Tensor, columns: int, budget: int) -> float:
    """E ||Psi^T Sigma||_F over Sigma in {+-1}^{n x columns}, exactly (each column's sign is free)."""
    chunks = _pattern_quadratics(_gram(psi)[None], budget)
    mean = _column_combinations_mean(chunks, columns, lambda q: q.sum(1).clamp_min(0.0).sqrt()[:, None], budget)
    return float(mean[0])


def _linear_mc_values(psi: torch.Tensor, columns: int, n_draws: int, seed: int, budget: int) -> torch.Tensor:
    """Per-draw ||Psi^T Sigma_j||_F (float64), Sigma_j in {+-1}^{n x columns}: one matmul per chunk."""
    n, d = psi.shape
    itemsize = psi.element_size()

    def kernel(signs: torch.Tensor) -> torch.Tensor:
        c = signs.shape[0]
        prod = signs.reshape(c * columns, n) @ psi                                # (c*columns, d)
        sq = torch.linalg.vector_norm(prod, dim=1, dtype=torch.float64).square()
        return sq.view(c, columns).sum(1).sqrt()

    return _mc_loop(n, columns, n_draws, seed, psi.device, psi.dtype,
                    columns * d * (itemsize + 8 + 8), budget, kernel)


def rademacher_linear(features: Any, radius: float, *, num_outputs: int = 1, norm: str = "frobenius",
                      method: str = "mc", n_draws: int = 1000, seed: int = 0, delta_mc: float = 0.01,
                      memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                      max_exact_signs: int = DEFAULT_MAX_EXACT_SIGNS) -> ErcSummary:
    """ERC of a norm-bounded linear class on ``features`` (THEORY §1, estimators of §5, envelope of §3a).

    Frobenius ``W_F(B)``: ``R_hat^v = (B/n) E ||Psi^T Sigma||_F``, Sigma in {+-1}^{n x K}.
    Row ``W_row(B)``:     ``R_hat^v = (B K/n) E ||Psi^T sigma||_2``, sigma in {+-1}^n.

    Parameters
    ----------
    features : array or tensor (n, d)
        ``Psi``; a torch tensor is computed on its own device (MC and exact paths are pure torch).
    radius : float
        ``B >= 0``.
    num_outputs : int
        ``K >= 1``.
    norm : {"frobenius", "row"}
    method : {"closed", "mc", "exact", "cvxpy", "auto"}
        ``closed``: value = upper = Jensen upper value (not an estimate), lower = upper/sqrt 2.
        ``mc``: mean of m per-draw sups, matmul in the features' dtype, moments in float64; upper =
        min(McDiarmid certificate at ``delta_mc``, closed form).
        ``exact``: all sign patterns (n signs for row / K = 1, n K for Frobenius), refused beyond
        ``max_exact_signs`` signs.
        ``cvxpy``: per draw (same draws as ``mc`` with the same seed) the sup of ``<W, Psi^T Sigma>/n`` over the
        ball solved by cvxpy (CPU); upper = closed form (no certificate is claimed for solver values).
        ``auto``: :func:`select_estimator` (exact up to ``LIMITS.auto_exact_signs`` signs, else ``mc``).
    n_draws, seed, delta_mc, memory_budget_bytes, max_exact_signs
        MC draws, sign seed, MC certificate failure probability in (0, 1), working memory per chunk, and the
        enumeration limit.
    """
    psi = _as_matrix(features, "features")
    b = check_nonneg(radius, "radius")
    k = check_count(num_outputs, "num_outputs")
    norm = check_norm(norm)
    method = check_choice(method, "method", METHODS)
    budget = _check_budget(memory_budget_bytes)
    max_exact = check_count(max_exact_signs, "max_exact_signs")
    n = psi.shape[0]
    sum_sq = _sum_sq(psi)
    closed_up = envelope(sum_sq, n, b, k, norm)[1]
    closed_lo = closed_up / math.sqrt(2.0)
    columns = k if norm == "frobenius" else 1       # independent sign columns per draw
    scale = b / n if norm == "frobenius" else b * k / n
    method = select_estimator(method, n * columns)
    common = dict(method=method, n=n, num_outputs=k, norm=norm, radius=b)

    if method == "closed":
        return ErcSummary(value=closed_up, stderr=0.0, upper=closed_up, lower=closed_lo, **common)
    if method == "exact":
        _check_exact(n * columns, max_exact)
        value = scale * _linear_exact_mean(psi, columns, budget)
        return ErcSummary(value=value, stderr=0.0, upper=value, lower=value, **common)

    m = check_count(n_draws, "n_draws")
    if method == "mc":
        delta = check_delta(delta_mc, "delta_mc")
        mean, err = _mean_stderr(_linear_mc_values(psi, columns, m, seed, budget))
        value, stderr = scale * mean, scale * err
        upper = min(value + _mc_dev(sum_sq, n, b, k, norm, m, delta), closed_up)
        return ErcSummary(value=value, stderr=stderr, upper=upper, lower=closed_lo, n_draws=m,
                                delta_mc=delta, **common)

    # cvxpy: same draws as "mc"; the row estimator's draw sigma is used for every output (Sigma = sigma 1^T),
    # whose per-draw sup B sum_c ||Psi^T sigma|| = B K ||Psi^T sigma|| is the MC per-draw value.
    sups = []
    for signs in rademacher_signs(n, m, num_columns=columns, seed=seed, device=psi.device, dtype=psi.dtype,
                                  chunk_draws=_chunk_draws(n * columns * 8 + 1, budget, m)):
        sig = signs.to(torch.float64).cpu().numpy().transpose(0, 2, 1)           # (c, n, columns)
        if norm == "row":
            sig = np.repeat(sig, k, axis=2)
        sups.append(linear_sup_cvxpy(psi, sig, b, norm=norm))
    mean, err = _mean_stderr(torch.from_numpy(np.concatenate(sups)))
    return ErcSummary(value=mean, stderr=err, upper=closed_up, lower=closed_lo, n_draws=m, **common)


def _signs_array(signs: Any, n: int) -> np.ndarray:
    s = np.asarray(signs.detach().cpu() if isinstance(signs, torch.Tensor) else signs, dtype=np.float64)
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3 or s.shape[1] != n:
        raise ValueError(f"signs must have shape (draws, n, K) with n = {n}, got {s.shape}.")
    if not np.all(np.abs(s) == 1.0):
        raise ValueError("signs must contain only +1 and -1.")
    return s


def linear_sup_closed(features: Any, signs: Any, radius: float, *, norm: str = "frobenius") -> np.ndarray:
    """Per-draw sup ``sup_{W in ball} <W, Psi^T Sigma>/n`` in closed form (THEORY §1), float64 numpy.

    ``signs`` (draws, n, K): Frobenius ``(B/n) ||Psi^T Sigma||_F``; row ``(B/n) sum_c ||Psi^T Sigma_c||_2``.
    """
    psi = _as_matrix(features, "features").to(torch.float64).cpu().numpy()
    s = _signs_array(signs, psi.shape[0])
    b = check_nonneg(radius, "radius")
    prod = np.einsum("nd,mnk->mkd", psi, s)
    if check_norm(norm) == "frobenius":
        return b / psi.shape[0] * np.sqrt((prod ** 2).sum(axis=(1, 2)))
    return b / psi.shape[0] * np.linalg.norm(prod, axis=2).sum(axis=1)


def _cvx_solve(problem: Any) -> float:
    """Solve with Clarabel at tight tolerances (1e-9: per-draw values agree with the closed forms to ~1e-9
    relative); SCS only if Clarabel is missing."""
    import cvxpy as cp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": handled below
        if "CLARABEL" in cp.installed_solvers():
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9,
                          tol_ktratio=1e-8, max_iter=400)
        else:  # pragma: no cover - SCS fallback when Clarabel is missing
            problem.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200000)
    if problem.status == "optimal_inaccurate":
        warnings.warn("cvxpy reported an inaccurate per-draw solution; its value is used as is.", RuntimeWarning,
                      stacklevel=3)
    elif problem.status != "optimal":
        raise RuntimeError(f"cvxpy could not solve the per-draw problem (status {problem.status}).")
    return float(problem.value)


def linear_sup_cvxpy(features: Any, signs: Any, radius: float, *, norm: str = "frobenius",
                     center: Any = None, center_radius: float | None = None) -> np.ndarray:
    """Per-draw sup of ``<W, Psi^T Sigma>/n`` over the ball (∩ ``{||W - W0||_F <= r}`` if ``center`` is given),
    each solved as a cvxpy second-order cone programme (THEORY §5, the "cvxpy" estimator).

    ``signs`` (draws, n, K); ``center`` ``W0`` (K, d); ``center_radius`` ``r >= 0``. The objective is scaled by
    ``1/||Psi^T Sigma||_F`` before solving (the sup is positively homogeneous) and scaled back.
    """
    import cvxpy as cp

    psi = _as_matrix(features, "features").to(torch.float64).cpu().numpy()
    n, d = psi.shape
    s = _signs_array(signs, n)
    k = s.shape[2]
    b = check_nonneg(radius, "radius")
    norm = check_norm(norm)
    coef = cp.Parameter((k, d))
    w = cp.Variable((k, d))
    cons = [cp.norm(w, "fro") <= b] if norm == "frobenius" else [cp.norm(w, 2, axis=1) <= b]
    if center is not None:
        w0 = _center_array(center, k, d)
        cons.append(cp.norm(w - w0, "fro") <= check_nonneg(center_radius, "center_radius"))
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(coef, w))), cons)
    out = np.empty(s.shape[0])
    for j in range(s.shape[0]):
        c = (psi.T @ s[j]).T                                                      # (K, d)
        size = float(np.linalg.norm(c))
        if size == 0.0:
            out[j] = 0.0
            continue
        coef.value = c / size
        out[j] = size * _cvx_solve(problem) / n
    return out


def _center_array(center: Any, k: int, d: int) -> np.ndarray:
    w0 = np.asarray(center.detach().cpu() if isinstance(center, torch.Tensor) else center, dtype=np.float64)
    if w0.ndim == 1 and k == 1:
        w0 = w0[None]
    if w0.shape != (k, d):
        raise ValueError(f"center must have shape (num_outputs, d) = {(k, d)}, got {w0.shape}.")
    if not np.all(np.isfinite(w0)):
        raise ValueError("center contains NaN or infinite values.")
    return w0


def rademacher_ball_intersection(features: Any, radius: float, center: Any, center_radius: float, *,
                                 num_outputs: int = 1, norm: str = "frobenius", method: str = "mc",
                                 n_draws: int = 200, seed: int = 0,
                                 max_exact_signs: int = 12) -> ErcSummary:
    """ERC of ``{W in ball(B)} ∩ {||W - W0||_F <= r}`` (distance to initialisation), per draw by cvxpy (THEORY §5).

    ``R_hat^v = E_Sigma sup_W <W, Psi^T Sigma>/n`` with Sigma in {+-1}^{n x K} (the constraints couple the rows,
    so every output gets its own sign column, also for the row ball). ``method="mc"``: the Frobenius sign draws
    of :func:`rademacher_linear` (same seed, same draws); ``"exact"``: all 2^{nK} sign matrices (the per-draw sup
    is not even in Sigma here, so no symmetry), refused beyond ``max_exact_signs`` signs. ``upper`` is the closed
    form of the smallest containing ball, ``min(closed(ball(B)), closed(W_F(||W0||_F + r)))`` (the class lies in
    both, and R_hat is monotone in the class, THEORY §2); ``lower`` is None. Large ``r`` gives the plain ball.
    The result's ``method`` is ``"cvxpy"`` (sign draws) or ``"cvxpy-exact"`` (enumeration).
    """
    psi = _as_matrix(features, "features")
    b = check_nonneg(radius, "radius")
    k = check_count(num_outputs, "num_outputs")
    norm = check_norm(norm)
    method = check_choice(method, "method", ("mc", "exact"))
    r = check_nonneg(center_radius, "center_radius")
    n, d = psi.shape
    w0 = _center_array(center, k, d)
    if norm == "frobenius":
        gap = max(0.0, float(np.linalg.norm(w0)) - b)
    else:
        gap = float(np.linalg.norm(np.maximum(0.0, np.linalg.norm(w0, axis=1) - b)))
    if gap > r:
        raise ValueError(f"the class is empty: the center is {gap:.6g} away from the {norm} ball of radius {b:g}, "
                         f"more than center_radius={r:g}.")
    sum_sq = _sum_sq(psi)
    upper = min(envelope(sum_sq, n, b, k, norm)[1],
                envelope(sum_sq, n, float(np.linalg.norm(w0)) + r, k, "frobenius")[1])
    if method == "exact":
        num = n * k
        _check_exact(num, check_count(max_exact_signs, "max_exact_signs"))
        flat = _bit_signs(2 ** num, num, torch.device("cpu")).numpy()             # (2^{nK}, nK)
        sig = flat.reshape(-1, k, n).transpose(0, 2, 1)
        value = float(np.mean(linear_sup_cvxpy(psi, sig, b, norm=norm, center=w0, center_radius=r)))
        return ErcSummary(value=value, stderr=0.0, upper=value, lower=value, method="cvxpy-exact", n=n,
                                num_outputs=k, norm=norm, radius=b)
    m = check_count(n_draws, "n_draws")
    signs = torch.cat(list(rademacher_signs(n, m, num_columns=k, seed=seed, device=psi.device, dtype=psi.dtype)))
    sig = signs.to(torch.float64).cpu().numpy().transpose(0, 2, 1)
    mean, err = _mean_stderr(torch.from_numpy(linear_sup_cvxpy(psi, sig, b, norm=norm, center=w0,
                                                               center_radius=r)))
    return ErcSummary(value=mean, stderr=err, upper=upper, lower=None,
                            method="cvxpy", n=n, num_outputs=k, norm=norm, radius=b, n_draws=m)


# ----------------------------------------------------------------------------------------------------------
# Finite classes (Massart, Lemma 5.1 and Lemma 5.2(b) checks)
# ----------------------------------------------------------------------------------------------------------

def _finite_exact(values: torch.Tensor, n_div: int, budget: int) -> float:
    """E max_j (1/n) sum_i sigma_i a_ji over ALL 2^N sign vectors (the max is not even: no symmetry)."""
    a = values.to(torch.float64)
    m_cls, num = a.shape
    total = 2 ** num
    step = max(1, budget // ((num + m_cls) * 8 * 4))
    acc = 0.0
    for start in range(0, total, step):
        count = min(step, total - start)
        t = torch.arange(start, start + count, device=a.device, dtype=torch.int64)
        s = (1 - 2 * ((t[:, None] >> torch.arange(num, device=a.device)) & 1)).to(torch.float64)
        acc += float((s @ a.T).amax(1).sum())
    return acc / total / n_div


def _finite(values: torch.Tensor, n: int, columns: int, method: str, n_draws: int, seed: int,
            delta_mc: float, budget: int, max_exact: int, norm: str) -> ErcSummary:
    """values (|A|, columns * n), column-major per member: entry c * n + i is a_c(x_i)."""
    v = values.to(torch.float64)
    radius = float(torch.linalg.vector_norm(v, dim=1).max())
    method = check_choice(method, "method", ("exact", "mc", "auto"))
    if method == "auto":
        method = "exact" if n * columns <= max_exact else "mc"
    common = dict(method=method, n=n, num_outputs=columns, norm=norm, radius=radius)
    if method == "exact":
        _check_exact(n * columns, max_exact)
        value = _finite_exact(v, n, budget)
        return ErcSummary(value=value, stderr=0.0, upper=value, lower=value, **common)
    m = check_count(n_draws, "n_draws")
    delta = check_delta(delta_mc, "delta_mc")

    def kernel(signs: torch.Tensor) -> torch.Tensor:
        return (signs.reshape(signs.shape[0], columns * n) @ v.T).amax(1)

    vals = _mc_loop(n, columns, m, seed, v.device, torch.float64, v.shape[0] * 8 * 2, budget, kernel)
    mean, err = _mean_stderr(vals / n)
    # McDiarmid: sign (i, c) moves one draw by <= 2 max_a |a_c(x_i)| / n; Massart holds for the nK signs too.
    dev = mcdiarmid_deviation(4.0 * float(v.abs().amax(0).square().sum()) / n ** 2, m, delta)
    massart = radius * math.sqrt(2.0 * math.log(v.shape[0])) / n
    return ErcSummary(value=mean, stderr=err, upper=min(mean + dev, massart),
                            lower=None, n_draws=m, delta_mc=delta, **common)


def rademacher_finite(values: Any, *, method: str = "exact", n_draws: int = 1000, seed: int = 0,
                      delta_mc: float = 0.01, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                      max_exact_signs: int = DEFAULT_MAX_EXACT_SIGNS) -> ErcSummary:
    """ERC of a finite class A given by its values ``values[j, i] = a_j(x_i)`` (|A| x n) (THEORY §0, §7):

    ``R_hat(A) = E_sigma max_j (1/n) sum_i sigma_i a_ji``.

    ``exact`` enumerates all 2^n sign vectors (no sigma <-> -sigma symmetry: the max is not even); ``mc`` averages
    m draws (upper = min(McDiarmid certificate, Massart's ``max_a ||a||_2 sqrt(2 ln|A|)/n``)). ``radius`` of
    the result is ``max_a ||a||_2``; ``norm`` is ``"finite"``.
    """
    v = _as_matrix(values, "values")
    return _finite(v, v.shape[1], 1, method, n_draws, seed, delta_mc, _check_budget(memory_budget_bytes),
                   check_count(max_exact_signs, "max_exact_signs"), "finite")


def rademacher_finite_vector(values: Any, *, method: str = "exact", n_draws: int = 1000, seed: int = 0,
                             delta_mc: float = 0.01, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                             max_exact_signs: int = DEFAULT_MAX_EXACT_SIGNS) -> ErcSummary:
    """Vector ERC of a finite class of R^K-valued functions, ``values[j, i, c] = a_jc(x_i)`` (|A| x n x K)
    (THEORY §0): ``R_hat^v(A) = E_Sigma max_j (1/n) sum_i sum_c Sigma_ic a_jc(x_i)``, Sigma in {+-1}^{n x K}.

    ``exact`` enumerates all 2^{nK} sign matrices; ``mc`` as in :func:`rademacher_finite`.
    """
    if isinstance(values, torch.Tensor):
        t = values.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(values, dtype=np.float64)))
    if t.ndim != 3 or min(t.shape) == 0:
        raise ValueError(f"values must have shape (|A|, n, K) with all sizes >= 1, got {tuple(t.shape)}.")
    n, k = t.shape[1], t.shape[2]
    flat = _as_matrix(t.permute(0, 2, 1).reshape(t.shape[0], k * n), "values")
    return _finite(flat, n, k, method, n_draws, seed, delta_mc, _check_budget(memory_budget_bytes),
                   check_count(max_exact_signs, "max_exact_signs"), "finite_vector")


# ----------------------------------------------------------------------------------------------------------
# The coupled SciLT class (THEORY §1-§2)
# ----------------------------------------------------------------------------------------------------------

def _check_alpha_grid(alpha_grid: Any) -> tuple[float, ...] | None:
    if alpha_grid is None:
        return None
    grid = tuple(float(a) for a in np.asarray(alpha_grid, dtype=np.float64).ravel())
    if not grid or not all(0.0 <= a <= 1.0 for a in grid):
        raise ValueError(f"alpha_grid must be a non-empty set of numbers in [0, 1], got {alpha_grid!r}.")
    return grid


def _coupled_features(qa: torch.Tensor, qb: torch.Tensor, qab: torch.Tensor,
                      grid: tuple[float, ...] | None) -> torch.Tensor:
    """Per sign column: [||a_c||, ||b_c||, ||alpha a_c + (1-alpha) b_c|| for alpha in grid] (last dim)."""
    cols = [qa.clamp_min(0.0).sqrt(), qb.clamp_min(0.0).sqrt()]
    for alpha in grid or ():
        q = alpha * alpha * qa + (1 - alpha) ** 2 * qb + 2 * alpha * (1 - alpha) * qab
        cols.append(q.clamp_min(0.0).sqrt())
    return torch.stack(cols, dim=-1)


def _coupled_reduce(fsum: torch.Tensor, grid: tuple[float, ...] | None) -> torch.Tensor:
    """(c, F) column sums -> (c, 2): [coupled per-draw sup, Lemma 5.1 sum per-draw sup], both times n/s.

    coupled = sum_c ||a_c|| + max_alpha sum_c ||alpha a_c + (1-alpha) b_c||  (alpha in {0, 1} for [0, 1]);
    sum     = 2 sum_c ||a_c|| + sum_c ||b_c||.
    """
    sa, sb = fsum[:, 0], fsum[:, 1]
    inner = torch.maximum(sa, sb) if grid is None else fsum[:, 2:].amax(1)
    return torch.stack([sa + inner, 2 * sa + sb], dim=1)


def coupled_sup_closed(psi_penult: Any, psi_final: Any, signs: Any, scale: float,
                       alpha_grid: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw sups (coupled, Lemma 5.1 sum) of the SciLT class in closed form (THEORY §1-§2), float64 numpy.

    With ``A = Psi1^T Sigma``, ``Bm = Psi2^T Sigma`` (columns a_c, b_c): coupled ``(s/n)[sum_c ||a_c|| +
    max_alpha sum_c ||alpha a_c + (1-alpha) b_c||]`` (max over ``alpha_grid``, or over {0, 1} for alpha in
    [0, 1] by convexity in alpha); sum ``(s/n)[2 sum_c ||a_c|| + sum_c ||b_c||]``.
    """
    p1 = _as_matrix(psi_penult, "psi_penult").to(torch.float64).cpu().numpy()
    p2 = _as_matrix(psi_final, "psi_final").to(torch.float64).cpu().numpy()
    if p1.shape != p2.shape:
        raise ValueError(f"psi_penult and psi_final must have the same shape, got {p1.shape} and {p2.shape}.")
    s = _signs_array(signs, p1.shape[0])
    sc = check_nonneg(scale, "scale")
    grid = _check_alpha_grid(alpha_grid)
    a = np.einsum("nd,mnk->mkd", p1, s)
    bm = np.einsum("nd,mnk->mkd", p2, s)
    sa = np.linalg.norm(a, axis=2).sum(1)
    sb = np.linalg.norm(bm, axis=2).sum(1)
    if grid is None:
        inner = np.maximum(sa, sb)
    else:
        inner = np.max([np.linalg.norm(al * a + (1 - al) * bm, axis=2).sum(1) for al in grid], axis=0)
    n = p1.shape[0]
    return sc / n * (sa + inner), sc / n * (2 * sa + sb)


def coupled_sup_cvxpy(psi_penult: Any, psi_final: Any, signs: Any, scale: float,
                      alpha_grid: Sequence[float] | None = None) -> np.ndarray:
    """Per-draw sup of the coupled SciLT class solved by cvxpy (THEORY §2, §5): for each alpha of the grid
    (default: 0, 0.1, ..., 1) the SOCP

        max_{W1, W2} (1/n) <Sigma, Psi1 U^T + Psi2 V^T>,  U = s(alpha W1 + W2), V = s(1 - alpha) W1,
        ||row_c(W1)||_2 <= 1, ||row_c(W2)||_2 <= 1,

    then the max over the grid. With the default grid this equals the sup over alpha in [0, 1] because the
    alpha-objective is convex in alpha (its max is at 0 or 1), which this independent method checks.
    """
    import cvxpy as cp

    p1 = _as_matrix(psi_penult, "psi_penult").to(torch.float64).cpu().numpy()
    p2 = _as_matrix(psi_final, "psi_final").to(torch.float64).cpu().numpy()
    if p1.shape != p2.shape:
        raise ValueError(f"psi_penult and psi_final must have the same shape, got {p1.shape} and {p2.shape}.")
    n, d = p1.shape
    s = _signs_array(signs, n)
    k = s.shape[2]
    sc = check_nonneg(scale, "scale")
    grid = _check_alpha_grid(alpha_grid) or CVXPY_ALPHA_GRID
    at, bt = cp.Parameter((k, d)), cp.Parameter((k, d))
    problems = []
    for alpha in grid:
        w1, w2 = cp.Variable((k, d)), cp.Variable((k, d))
        u = alpha * w1 + w2              # U / s
        v = (1.0 - alpha) * w1           # V / s
        obj = cp.sum(cp.multiply(at, u)) + cp.sum(cp.multiply(bt, v))
        problems.append(cp.Problem(cp.Maximize(obj), [cp.norm(w1, 2, axis=1) <= 1, cp.norm(w2, 2, axis=1) <= 1]))
    out = np.empty(s.shape[0])
    for j in range(s.shape[0]):
        a, bm = (p1.T @ s[j]).T, (p2.T @ s[j]).T                                  # (K, d): <Sigma, Psi U^T> = <A^T, U>
        size = max(float(np.linalg.norm(a)), float(np.linalg.norm(bm)))
        if size == 0.0:
            out[j] = 0.0
            continue
        at.value, bt.value = a / size, bm / size
        out[j] = sc * size / n * max(_cvx_solve(p) for p in problems)
    return out


def rademacher_coupled_scilt(psi_penult: Any, psi_final: Any, num_classes: int, scale: float, *,
                             method: str = "mc", n_draws: int = 1000, seed: int = 0, delta_mc: float = 0.01,
                             alpha_grid: Sequence[float] | None = None,
                             memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                             max_exact_signs: int = DEFAULT_MAX_EXACT_SIGNS) -> CoupledResult:
    """ERC of the coupled SciLT class and the Lemma 5.1 sum on the same draws (THEORY §1-§2, §5).

    The class reachable by one (W1, W2, alpha) with unit-norm rows (cosine heads; the sup of a linear functional
    over the sphere product equals that over the ball product) and alpha in [0, 1] (or in ``alpha_grid``) has
    scores ``U psi1 + V psi2``, ``U = s(alpha W1 + W2)``, ``V = s(1-alpha) W1``. Per draw Sigma (n x K), with
    ``A = Psi1^T Sigma`` and ``Bm = Psi2^T Sigma``:

        sup = (s/n) [sum_c ||a_c|| + max_alpha sum_c ||alpha a_c + (1-alpha) b_c||]
            = (s/n) [sum_c ||a_c|| + max(sum_c ||a_c||, sum_c ||b_c||)]     (alpha in [0, 1]: convex in alpha),

    and the Lemma 5.1 sum ``R_hat^v(F_{N-1}) + R_hat^v(F_N)`` (row radii 2s and s) has per-draw sup
    ``(s/n)[2 sum_c ||a_c|| + sum_c ||b_c||]`` >= the coupled one. ``ratio`` = value / sum_value.

    Methods: ``exact`` (all sign matrices; n K <= ``max_exact_signs``), ``mc`` (draws as the Frobenius estimator
    with K = num_classes; upper = min(value + McDiarmid term, closed form of the sum), the McDiarmid term being
    ``(s/n) sqrt(2 K sum_i (||psi1_i|| + max(||psi1_i||, ||psi2_i||))^2 ln(1/delta_mc) / m)`` since sign (i, c)
    moves a draw by <= (2s/n)(||psi1_i|| + max(||psi1_i||, ||psi2_i||))), ``cvxpy`` (per draw the SOCPs of
    :func:`coupled_sup_cvxpy` on the mc draws; upper = closed form of the sum), ``auto``.
    """
    p1 = _as_matrix(psi_penult, "psi_penult")
    p2 = _as_matrix(psi_final, "psi_final")
    if p1.shape != p2.shape:
        raise ValueError(f"psi_penult and psi_final must have the same shape (n, d), got {tuple(p1.shape)} and "
                         f"{tuple(p2.shape)}.")
    if p1.device != p2.device:
        raise ValueError("psi_penult and psi_final must be on the same device.")
    p2 = p2.to(p1.dtype)
    k = check_count(num_classes, "num_classes")
    sc = check_nonneg(scale, "scale")
    method = check_choice(method, "method", METHODS)
    if method == "closed":
        raise ValueError("the coupled class has no closed form of its own; use method \"mc\", \"exact\", "
                         "\"cvxpy\" or \"auto\" (the closed form of the Lemma 5.1 sum is rademacher_linear's).")
    grid = _check_alpha_grid(alpha_grid)
    budget = _check_budget(memory_budget_bytes)
    max_exact = check_count(max_exact_signs, "max_exact_signs")
    n, d = p1.shape
    method = select_estimator(method, n * k)
    closed_sum = (envelope(_sum_sq(p1), n, 2 * sc, k, "row")[1] + envelope(_sum_sq(p2), n, sc, k, "row")[1])
    common = dict(method=method, n=n, num_outputs=k, scale=sc, alpha_grid=grid)

    def finish(coupled: torch.Tensor | float, total: torch.Tensor | float, err: float, sum_err: float,
               upper: float, **extra: Any) -> CoupledResult:
        value, sum_value = float(coupled), float(total)
        ratio = value / sum_value if sum_value > 0 else None
        return CoupledResult(value=value, stderr=err, upper=upper, sum_value=sum_value, sum_stderr=sum_err,
                             ratio=ratio, **common, **extra)

    if method == "exact":
        _check_exact(n * k, max_exact)
        grams = torch.stack([_gram(p1), _gram(p2), _gram(p1, p2)])
        chunks = (_coupled_features(q[:, 0], q[:, 1], q[:, 2], grid) for q in _pattern_quadratics(grams, budget))
        mean = sc / n * _column_combinations_mean(chunks, k, lambda f: _coupled_reduce(f, grid), budget)
        return finish(mean[0], mean[1], 0.0, 0.0, float(mean[0]))

    m = check_count(n_draws, "n_draws")
    if method == "cvxpy":
        sig = torch.cat(list(rademacher_signs(n, m, num_columns=k, seed=seed, device=p1.device, dtype=p1.dtype)))
        sig = sig.to(torch.float64).cpu().numpy().transpose(0, 2, 1)
        coupled = torch.from_numpy(coupled_sup_cvxpy(p1, p2, sig, sc, grid))
        total = torch.from_numpy(coupled_sup_closed(p1, p2, sig, sc, grid)[1])
        (v, e), (sv, se) = _mean_stderr(coupled), _mean_stderr(total)
        return finish(v, sv, e, se, closed_sum, n_draws=m)

    delta = check_delta(delta_mc, "delta_mc")
    itemsize = p1.element_size()

    def kernel(signs: torch.Tensor) -> torch.Tensor:
        c = signs.shape[0]
        flat = signs.reshape(c * k, n)
        a, bm = flat @ p1, flat @ p2                                              # (c*K, d) each
        qa = torch.linalg.vector_norm(a, dim=1, dtype=torch.float64).square()
        qb = torch.linalg.vector_norm(bm, dim=1, dtype=torch.float64).square()
        qab = (a.to(torch.float64) * bm.to(torch.float64)).sum(1) if grid else torch.zeros_like(qa)
        feats = _coupled_features(qa, qb, qab, grid).view(c, k, -1).sum(1)
        return _coupled_reduce(feats, grid)

    vals = sc / n * _mc_loop(n, k, m, seed, p1.device, p1.dtype, k * d * (2 * itemsize + 4 * 8), budget, kernel)
    (v, e), (sv, se) = _mean_stderr(vals[:, 0]), _mean_stderr(vals[:, 1])
    n1, n2 = _row_norms(p1), _row_norms(p2)
    # sign (i, c) moves S_a by <= 2||psi1_i|| and max(S_a, S_b) by <= 2 max(||psi1_i||, ||psi2_i||), times s/n
    spread = float((n1 + torch.maximum(n1, n2)).square().sum())
    dev = mcdiarmid_deviation(4.0 * sc ** 2 * k * spread / n ** 2, m, delta)
    return finish(v, sv, e, se, min(v + dev, closed_sum), n_draws=m, delta_mc=delta)
