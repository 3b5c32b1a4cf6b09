"""A PAC-Bayes bound for the heads on fixed features, the second bound family (THEORY §8; proofs/pac_bayes_heads.md).

The scorer is linear in W = [U V] (K × D/K) on z = (ψ₁, ψ₂): f_W(z) = W z. The bounded classifier is the
deterministic argmax of the trained W; the statement bounds its **class errors** err_c(W) = P_{D_c}(M_W(z, c) ≤ 0)
and, from the same events, the balanced, group balanced, worst-class and prior-weighted errors — the quantities of
schema.QUANTITIES, so every value stands beside the test-split value of exactly that quantity.

Posterior Q = N(W, σ²I), prior P = N(W₀, σ_P²I) with W₀ = the S_A heads (``ctx.prior_head_weights``, certified
mode) or 0 (a data-free prior). For a grid point (σ, σ_P/σ, τ) fixed before the data the loss of a perturbed scorer
W' is the *normalised margin loss* ℓ(W', z, y) = 1{M_{W'}(z, y) ≤ τ·√2·σ·‖z‖}, and

1. de-randomisation (pointwise, any K): err_c(W) ≤ L_c(Q) / Φ(τ), L_c(Q) = E_{D_c} E_{W'~Q} ℓ(W', z, c);
2. PAC-Bayes-kl (Seeger 2002, Maurer 2004), with ξ(m) = Σ_k C(m,k)(k/m)^k(1 − k/m)^{m−k} ≤ 2√m:
   class c (S_c i.i.d. from D_c given the labels):  kl(L̂_c(Q) ‖ L_c(Q)) ≤ (KL(Q‖P) + ln(ξ(n_c)/δ_c)) / n_c;
   pooled (independent, not identically distributed; Hoeffding's convex order makes the same moment bound hold):
   kl(L̂(Q) ‖ Σ_c (n_c/n) L_c(Q)) ≤ (KL(Q‖P) + ln(ξ(n)/δ_p)) / n;
3. L̂(Q) is estimated with N independent perturbations per sample point (ε_i = E z_i ~ N(0, σ²‖z_i‖² I_K), drawn
   directly): the event count is Poisson-binomial, so ``binomial.kl_upper`` at δ′ is an upper value of L̂(Q)
   (Langford & Caruana 2002's sample convergence bound, here over n_c·N independent indicators).

δ split of the statement's δ: δ/10 for the Monte Carlo events (δ′ = δ/10 / (|σ|·|τ|·(K₊ + 1)) each), the rest in
two halves — the class event (δ_c = ·/(K₊·G)) and the pooled event (δ_p = ·/G), G = |σ|·|σ_P/σ|·|τ|.

Certificate: the prior (data-free, or the S_A heads read before the refit on S_B) and the loss must be fixed before
S, and the loss is defined on the feature maps: so the values are certificates exactly where the features are fixed
before S, ``ctx.validity`` in {"certified", "fixed-features"} (the default ``certificate_in``); in diagnostic mode they
are reported as a diagnostic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from scilt_theory.binomial import kl_inverse_upper, kl_upper
from scilt_theory.schema import StatementRecord
from scilt_theory.statements.base import Statement
from scilt_theory.statements.context import BoundContext
from scilt_theory.statements.targets import aggregate_class_family, class_target

__all__ = ["PAC_BAYES", "PacBayes", "PacBayesGrid", "derandomisation_factor", "gaussian_kl", "gibbs_threshold_counts",
           "log_xi", "pac_bayes_kl_bound"]

#: share of the statement's δ given to the Monte Carlo estimates of the empirical Gibbs losses
DRAWS_SHARE = 0.1
#: the draws' stream is np.random.default_rng([seed, STREAM]): independent of every other use of the seed
STREAM = 0x5041_4342


@dataclass(frozen=True)
class PacBayesGrid:
    """The grid of (σ, σ_P/σ, τ), fixed before the data; σ = factor × the reference scale (the cosine scale s, or
    max ρ / 4 of the margin grid when the scale is not known: both fixed before S)."""

    sigma_factors: tuple[float, ...] = tuple(2.0 ** (-k / 2) for k in range(16, -1, -1))  # s/256 … s
    prior_ratios: tuple[float, ...] = tuple(2.0 ** (j / 2) for j in range(13))              # σ_P/σ = 1 … 64
    taus: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)                               # threshold / (√2σ‖z‖)

    def __post_init__(self) -> None:
        if not (self.sigma_factors and self.prior_ratios and self.taus):
            raise ValueError("every axis of the PAC-Bayes grid needs at least one value")
        if min(self.sigma_factors) <= 0 or min(self.prior_ratios) <= 0 or min(self.taus) < 0:
            raise ValueError("σ factors and prior ratios must be > 0, thresholds τ >= 0")

    @property
    def size(self) -> int:
        return len(self.sigma_factors) * len(self.prior_ratios) * len(self.taus)


# ----------------------------------------------------------------------------------------------- formulas

@functools.lru_cache(maxsize=4096)
def log_xi(m: int) -> float:
    """ln ξ(m), ξ(m) = Σ_{k=0}^m C(m,k) (k/m)^k (1 − k/m)^{m−k} = E e^{m kl(p̂ ‖ p)} for m Bernoulli(p) draws (any
    p ∈ (0, 1); Maurer 2004: √m ≤ ξ(m) ≤ 2√m for m ≥ 8). Summed exactly (in logs) up to m = 10⁶; beyond, Maurer's
    upper value ln(2√m), which keeps every use of it valid."""
    m = int(m)
    if m < 1:
        raise ValueError(f"ξ(m) needs m >= 1, got {m}.")
    if m > 1_000_000:
        return math.log(2.0) + 0.5 * math.log(m)
    k = np.arange(m + 1, dtype=np.float64)
    log_comb = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
    q = k / m
    terms = log_comb + special.xlogy(k, q) + special.xlogy(m - k, 1.0 - q)
    return float(special.logsumexp(terms))


def gaussian_kl(dist_sq: float, dim: int, sigma: float | np.ndarray, sigma_prior: float | np.ndarray) -> np.ndarray:
    """KL(N(W, σ²I_D) ‖ N(W₀, σ_P²I_D)) = ½[D(σ²/σ_P² − 1 + ln(σ_P²/σ²)) + ‖W − W₀‖²/σ_P²] (D = ``dim``)."""
    sigma, sigma_prior = np.asarray(sigma, dtype=np.float64), np.asarray(sigma_prior, dtype=np.float64)
    r = (sigma / sigma_prior) ** 2
    return 0.5 * (dim * (r - 1.0 - np.log(r)) + float(dist_sq) / sigma_prior ** 2)


def pac_bayes_kl_bound(gibbs_loss: float | np.ndarray, kl: float | np.ndarray, n: int, delta: float) -> np.ndarray:
    """The PAC-Bayes-kl upper value of the risk: kl⁻¹(L̂, (KL + ln(ξ(n)/δ))/n) (Seeger 2002, Maurer 2004)."""
    return kl_inverse_upper(gibbs_loss, (np.asarray(kl) + log_xi(n) + math.log(1.0 / delta)) / n)


def derandomisation_factor(tau: float | np.ndarray) -> np.ndarray:
    """1/Φ(τ): err_c(W) ≤ L_c(Q)/Φ(τ) for the normalised margin loss at τ (2 at τ = 0, → 1 as τ grows)."""
    return 1.0 / stats.norm.cdf(np.asarray(tau, dtype=np.float64))


def gibbs_threshold_counts(scores: np.ndarray, labels: np.ndarray, norms: np.ndarray, sigmas: Sequence[float],
                           taus: Sequence[float], num_classes: int, draws: int, rng: np.random.Generator,
                           chunk_elements: int = 1_000_000) -> np.ndarray:
    """Monte Carlo event counts, (|σ|, |τ|, K): for every sample point N = ``draws`` independent perturbations
    ε ~ N(0, σ²‖z_i‖² I_K) of its scores (the law of E z_i for E ~ N(0, σ²I)), and the number of them with
    M(scores + ε, y_i) ≤ τ·√2·σ·‖z_i‖, summed per class.

    With ε = σ‖z_i‖g, g ~ N(0, I_K), the event is min_{j≠y} [(s_y − s_j)/(σ‖z_i‖) + g_y − g_j] ≤ √2·τ, so one
    standard normal array per point serves every σ and τ (a point with z_i = 0 has all scores 0 and M = 0 ≤ t: an
    event for every σ, τ).
    """
    n, k = scores.shape
    out = np.zeros((len(sigmas), len(taus), num_classes), dtype=np.int64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    levels = np.sqrt(2.0) * np.asarray(taus, dtype=np.float64)
    rows = max(1, int(chunk_elements // max(1, draws * (k - 1))))
    others = np.array([[j for j in range(k) if j != c] for c in range(k)], dtype=np.int64)   # (K, K − 1)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        g = rng.standard_normal((stop - start, draws, k))
        s, y, r = scores[start:stop], labels[start:stop], norms[start:stop]
        idx = np.arange(stop - start)
        oth = others[y]                                                               # (rows, K − 1)
        gap = s[idx, y][:, None] - np.take_along_axis(s, oth, axis=1)                # s_y − s_j (rows, K − 1)
        # g_y − g_j laid out (K − 1, rows, N): the minimum over j is then an elementwise one over slabs
        dg = np.ascontiguousarray((g[idx, :, y][:, :, None] - np.take_along_axis(g, oth[:, None, :], axis=2))
                                  .transpose(2, 0, 1))
        buf = np.empty_like(dg)
        for a, sigma in enumerate(sigmas):
            with np.errstate(divide="ignore", invalid="ignore"):
                shift = np.where(r[:, None] > 0, gap / (sigma * r[:, None]), -np.inf)  # (rows, K − 1)
            np.add(shift.T[:, :, None], dg, out=buf)
            norm_margin = np.minimum.reduce(buf, axis=0)                              # (rows, N)
            for b, level in enumerate(levels):
                hits = np.count_nonzero(norm_margin <= level, axis=1)
                out[a, b] += np.bincount(y, weights=hits, minlength=num_classes).astype(np.int64)
    return out


# ----------------------------------------------------------------------------------------------- statement

@functools.lru_cache(maxsize=65536)
def _kl_upper(errors: int, n: int, delta: float) -> float:
    """binomial.kl_upper, remembered (the same counts recur across σ, τ and classes)."""
    return kl_upper(errors, n, delta)


@dataclass(frozen=True)
class _Curve:
    """One bound (a class, or the pooled sample) over the whole grid: what the records and projections read."""

    n: int
    delta_each: float
    events: np.ndarray      # (|σ|, |τ|) Monte Carlo event counts
    trials: int             # n · N
    upper: np.ndarray       # (|σ|, |τ|) upper values of the empirical Gibbs loss (sample convergence)
    risk: np.ndarray        # (|σ|, |ratio|, |τ|) PAC-Bayes-kl upper values of L(Q)
    value: np.ndarray       # (|σ|, |ratio|, |τ|) risk / Φ(τ): upper values of the deterministic error
    deviation: np.ndarray   # (|σ|, |ratio|) (KL + ln(ξ(n)/δ))/n
    floor: float
    projection: np.ndarray | None = None   # filled by _projection (n_for_nonvacuous)

    @functools.cached_property
    def best(self) -> tuple[int, int, int]:
        """The grid point of the smallest value; among ties (e.g. every point vacuous, kl⁻¹ = 1) the one with the
        smallest L̂-upper + √(deviation/2) (the Pinsker form: the point closest to an informative value)."""
        proxy = self.upper[:, None, :] + np.sqrt(self.deviation[:, :, None] / 2.0)
        order = np.lexsort((proxy.ravel(), self.value.ravel()))
        return tuple(int(i) for i in np.unravel_index(int(order[0]), self.value.shape))

    @property
    def bound(self) -> float:
        return float(self.value[self.best])


class PacBayes(Statement):
    """THEORY §8, PAC-Bayes: Gaussian posterior around the trained heads, de-randomised to the deterministic scorer;
    every class at once, the balanced / group / worst-class errors from the class event, and the prior-weighted error
    from the pooled event (or the class event, whichever is smaller). proofs/pac_bayes_heads.md."""

    name = "pac_bayes"
    theory = "THEORY §8, PAC-Bayes"
    family = "pac-bayes"
    headline = 4
    label = "PAC-Bayes"

    def __init__(self, grid: PacBayesGrid | None = None, draws: int = 1000, min_draws: int = 100,
                 work: float = 2e8, project: bool = True) -> None:
        """``draws`` perturbations per sample point (fewer on large samples, at least ``min_draws``: about ``work``
        normal-score evaluations per σ axis in all); ``project``: compute n_for_nonvacuous (a reporting aid)."""
        self.grid = grid or PacBayesGrid()
        self.draws, self.min_draws, self.work, self.project = int(draws), int(min_draws), float(work), bool(project)

    def applies(self, ctx: BoundContext) -> bool:
        return ctx.head_weights is not None and ctx.psi_penult is not None and ctx.psi_final is not None

    # --- the pieces, computed once -----------------------------------------------------------------------------
    def reference_scale(self, ctx: BoundContext) -> float:
        """s (fixed before training), or max ρ/4 of the grid fixed before the data when s is not known."""
        return float(ctx.scale) if ctx.scale is not None else float(max(ctx.grid.rhos)) / 4.0

    def num_draws(self, n: int, k: int) -> int:
        """Perturbations per sample point: ``draws``, fewer on large samples (at least ``min_draws``)."""
        per_draw = n * k * len(self.grid.sigma_factors)
        return int(max(self.min_draws, min(self.draws, self.work // max(1, per_draw))))

    def _evaluate(self, ctx: BoundContext, delta: float) -> dict:
        g = self.grid
        u, v = ctx.head_weights
        w = np.concatenate([u, v], axis=1)
        z = np.concatenate([ctx.psi_penult, ctx.psi_final], axis=1)
        scores = z @ w.T
        norms = np.linalg.norm(z, axis=1)
        certified_prior = ctx.prior_head_weights is not None
        w0 = np.concatenate(ctx.prior_head_weights, axis=1) if certified_prior else np.zeros_like(w)
        dist_sq = float(np.sum((w - w0) ** 2))
        dim = int(w.size)
        sigmas = self.reference_scale(ctx) * np.asarray(g.sigma_factors)
        ratios = np.asarray(g.prior_ratios)
        taus = np.asarray(g.taus)
        kl = gaussian_kl(dist_sq, dim, sigmas[:, None], sigmas[:, None] * ratios[None, :])   # (|σ|, |ratio|)
        kl_min = float(np.min(gaussian_kl(0.0, dim, 1.0, ratios)))
        factor = derandomisation_factor(taus)                                                 # (|τ|,)

        present = ctx.present_classes
        counts = ctx.class_counts
        n_draws = self.num_draws(ctx.n, ctx.num_classes)
        rng = np.random.default_rng([int(ctx.settings.get("seed", 0)), STREAM])
        events = gibbs_threshold_counts(scores, ctx.labels, norms, sigmas, taus, ctx.num_classes, n_draws, rng)

        d_draws = DRAWS_SHARE * delta
        d_pb = delta - d_draws
        d_draw_each = d_draws / (len(sigmas) * len(taus) * (len(present) + 1))
        d_class_each = d_pb / 2.0 / (len(present) * g.size)
        d_pool_each = d_pb / 2.0 / g.size
        def mc_upper(k: int, trials: int) -> float:
            return _kl_upper(int(k), int(trials), d_draw_each)

        # every curve (the present classes, then the pooled sample) in one array: (C, |σ|, ...)
        sizes = [int(counts[c]) for c in present] + [ctx.n]
        d_each = np.array([d_class_each] * len(present) + [d_pool_each])
        ev_all = np.concatenate([events[:, :, present].transpose(2, 0, 1), events.sum(axis=2)[None]])
        upper = np.array([[[mc_upper(k, m * n_draws) for k in row] for row in ev_c] for ev_c, m in zip(ev_all, sizes)])
        log_terms = np.array([log_xi(m) for m in sizes]) + np.log(1.0 / d_each)
        m_arr = np.asarray(sizes, dtype=np.float64)
        deviation = (kl[None] + log_terms[:, None, None]) / m_arr[:, None, None]               # (C, |σ|, |ratio|)
        risk = kl_inverse_upper(upper[:, :, None, :], deviation[:, :, :, None])              # (C, |σ|, |ratio|, |τ|)
        zero = np.array([mc_upper(0, m * n_draws) for m in sizes])
        floors = kl_inverse_upper(zero, (kl_min + log_terms) / m_arr) * factor.min()
        built = [_Curve(n=m, delta_each=float(d_each[i]), events=ev_all[i], trials=m * n_draws, upper=upper[i],
                        risk=risk[i], value=risk[i] * factor[None, None, :], deviation=deviation[i],
                        floor=float(floors[i])) for i, m in enumerate(sizes)]
        curves = dict(zip(present, built[:-1]))
        pooled = built[-1]
        return {"curves": curves, "pooled": pooled, "sigmas": sigmas, "ratios": ratios, "taus": taus, "kl": kl,
                "dist_sq": dist_sq, "dim": dim, "draws": n_draws, "certified_prior": certified_prior,
                "project": self.project,
                "delta_split": {"draws": d_draws, "draws_each": d_draw_each, "class_event": d_pb / 2.0,
                                "class_each": d_class_each, "pooled_event": d_pb / 2.0, "pooled_each": d_pool_each}}

    # --- records ---------------------------------------------------------------------------------------------
    def _terms(self, ev: dict, cv: _Curve, method: str) -> dict:
        a, b, t = cv.best
        sigma, ratio, tau = float(ev["sigmas"][a]), float(ev["ratios"][b]), float(ev["taus"][t])
        terms = {
            "method": method, "n": cv.n, "sigma": sigma, "prior_scale": sigma * ratio, "prior_ratio": ratio,
            "tau": tau, "threshold": "M_{W+E}(z, y) <= tau·√2·sigma·‖z‖",
            "prior": ("N(W₀, σ_P² I), W₀ = the S_A heads (fixed before S)" if ev["certified_prior"]
                      else "N(0, σ_P² I) (data-free)"),
            "kl": float(ev["kl"][a, b]), "dimension": ev["dim"], "distance_sq": ev["dist_sq"],
            "gibbs_margin_loss": float(cv.events[a, t] / cv.trials), "gibbs_margin_loss_upper": float(cv.upper[a, t]),
            "draws": ev["draws"], "trials": cv.trials, "draw_events": int(cv.events[a, t]),
            "deviation": float(cv.deviation[a, b]), "ln_xi": log_xi(cv.n),
            "gibbs_margin_risk_bound": float(cv.risk[a, b, t]),
            "derandomisation_factor": float(derandomisation_factor(tau)),
            "delta_each": cv.delta_each, "delta_draws_each": ev["delta_split"]["draws_each"],
            "delta_split": dict(ev["delta_split"]), "grid_size": self.grid.size,
            "grid": {"sigma": [float(s) for s in ev["sigmas"]], "prior_ratio": [float(r) for r in ev["ratios"]],
                     "tau": [float(x) for x in ev["taus"]]},
        }
        zero = [i for i, x in enumerate(ev["taus"]) if x == 0.0]
        if zero:  # the Gibbs classifier's own error L(Q_σ) (τ = 0, ties as errors) at the chosen σ, same event
            terms["gibbs_error_bound"] = float(cv.risk[a, :, zero[0]].min())
        return terms

    def evaluate(self, ctx: BoundContext, delta: float) -> list[StatementRecord]:
        return self.records(ctx, delta, self._evaluate(ctx, delta))

    def records(self, ctx: BoundContext, delta: float, ev: dict) -> list[StatementRecord]:
        """The records of one grid evaluation (``_evaluate``): every class, the aggregates and the overall value."""
        curves: dict[int, _Curve] = ev["curves"]
        pooled: _Curve = ev["pooled"]
        records = []
        for c in range(ctx.num_classes):
            if c not in curves:
                records.append(self.record(ctx, class_target(c), None, delta, reason="no training samples",
                                           quantity="class error"))
                continue
            cv = curves[c]
            records.append(self.record(ctx, class_target(c), cv.bound, delta,
                                       self._terms(ev, cv, "class event (S_c i.i.d. from D_c given the labels)"),
                                       quantity="class error", floor=cv.floor,
                                       n_for_nonvacuous=_n_for_nonvacuous([cv], max, ev, ctx.n)))

        records += aggregate_class_family(
            self, ctx, delta, {c: cv.bound for c, cv in curves.items()}, {c: cv.floor for c, cv in curves.items()},
            lambda members, how: _n_for_nonvacuous([curves[c] for c in members], how, ev, ctx.n),
            lambda kind: {"method": f"{kind} of class bounds", "delta_each": ev["delta_split"]["class_each"],
                          "draws": ev["draws"], "grid_size": self.grid.size, "delta_split": dict(ev["delta_split"])})
        present = list(curves)

        # the prior-weighted error Σ_c (n_c/n) err_c: the pooled event, or the π-weighted class bounds
        pi = {c: curves[c].n / ctx.n for c in present}
        weighted = float(sum(pi[c] * curves[c].bound for c in present))
        weighted_floor = float(sum(pi[c] * curves[c].floor for c in present))
        if pooled.bound <= weighted:
            terms = self._terms(ev, pooled, "pooled event (independent, non-identical draws given the labels)")
            bound = pooled.bound
        else:
            terms = {"classes": present, "method": "π-weighted class bounds",
                     "delta_each": ev["delta_split"]["class_each"], "draws": ev["draws"],
                     "grid_size": self.grid.size, "delta_split": dict(ev["delta_split"]),
                     "pooled_bound": pooled.bound}
            bound = weighted
        terms["weights"] = "class proportions of the bound sample"
        projected = [x for x in (_n_for_nonvacuous([pooled], max, ev, ctx.n), _n_for_nonvacuous(
            [curves[c] for c in present], lambda v: float(np.dot([pi[c] for c in present], v)), ev, ctx.n))
            if x is not None]
        records.append(self.record(ctx, "overall", bound, delta, terms, quantity="prior-weighted error",
                                   floor=min(pooled.floor, weighted_floor),
                                   n_for_nonvacuous=min(projected) if projected else None))
        return records


#: sizes t·n at which the projection of n_for_nonvacuous is evaluated (t geometric, ratio √2)
_T_GRID = 2.0 ** (np.arange(-12, 81) / 2.0)


def _projection(cv: _Curve, ev: dict) -> np.ndarray:
    """min over the grid of the value at sizes t·n_c (t in _T_GRID) with the Monte Carlo estimate of the empirical
    Gibbs loss and the KL as they are: kl⁻¹(L̂, (KL + ln ξ(t n_c) + ln(1/δ_c))/(t n_c)) / Φ(τ)."""
    if cv.projection is None:
        factor = derandomisation_factor(ev["taus"])
        m = np.maximum(1, np.round(_T_GRID * cv.n)).astype(np.int64)
        # ln ξ(m) ≈ ½ ln(πm/2) for large m (the projection is not a bound: no upper value needed)
        lx = np.array([log_xi(int(x)) if x <= 100_000 else 0.5 * math.log(math.pi * x / 2.0) for x in m])
        dev = (ev["kl"][None] + lx[:, None, None] + math.log(1.0 / cv.delta_each)) / (_T_GRID * cv.n)[:, None, None]
        est = cv.events / cv.trials
        val = kl_inverse_upper(est[None, :, None, :], dev[..., None], iterations=40) * factor
        object.__setattr__(cv, "projection", val.reshape(len(_T_GRID), -1).min(axis=1))
    return cv.projection


def _n_for_nonvacuous(curves: Sequence[_Curve], how: Callable[[list[float]], float], ev: dict, n: int
                      ) -> float | None:
    """Bound-sample size (class proportions as now) at which ``how`` over the curves' min-over-grid values drops
    below 1 if the empirical Gibbs losses (their Monte Carlo estimates) and the KL stayed as they are: the first size
    of a geometric grid (ratio √2) where it does, refined by log-linear interpolation; None when it never does up to
    2^40·n (e.g. the losses alone keep it >= 1)."""
    if not ev["project"]:
        return None
    values = np.array([how([float(_projection(cv, ev)[i]) for cv in curves]) for i in range(len(_T_GRID))])
    below = np.nonzero(values < 1.0)[0]
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(_T_GRID[0] * n)
    v0, v1 = values[i - 1], values[i]
    frac = (v0 - 1.0) / (v0 - v1) if v0 > v1 else 1.0
    return float(n * _T_GRID[i - 1] * (_T_GRID[i] / _T_GRID[i - 1]) ** frac)


PAC_BAYES = PacBayes()
