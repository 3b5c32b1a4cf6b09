"""The PAC-Bayes statement for the heads on fixed features (THEORY §8; proofs/pac_bayes_heads.md).

Formulas against independent computations (the Gaussian KL by numeric integration and the general formula, ξ(m) in
exact integer arithmetic and as a binomial moment, the kl-inverse against binomial.kl_upper, the de-randomisation
constant and the Gibbs losses against closed forms and quadrature), the record reproduced by hand, and repeated
trials with FIXED class counts on a distribution with exact class risks (finite support), each with its power
check: a mutant with the ln(ξ(n)/δ) term dropped must fail clearly more often on the same trials.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp
from scipy.stats import binom
from test_bound_validity import ROT

from scilt_theory.binomial import kl_bernoulli, kl_inverse_upper, kl_upper
from scilt_theory.grid import BoundGrid
from scilt_theory.statements import Estimation, Hypothesis, Sample, build_context, fused_model_bounds
from scilt_theory.statements.pacbayes import (
    DRAWS_SHARE,
    PacBayes,
    PacBayesGrid,
    derandomisation_factor,
    gaussian_kl,
    gibbs_threshold_counts,
    log_xi,
    pac_bayes_kl_bound,
)

GRID = BoundGrid.geometric(0.1, 3.0, 6)
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(160)   # ∫ f(u) e^{-u²/2} du ≈ Σ w f(u)


def gibbs_probability(scores: np.ndarray, labels: np.ndarray, scale: np.ndarray, tau: float = 0.0) -> np.ndarray:
    """P(M(scores + scale·g, y) <= τ·√2·scale), g ~ N(0, I_K), per row, by quadrature: 1 − E_u Π_{k≠y} Φ(a_k + u),
    a_k = (s_y − s_k)/scale − √2 τ (an independent computation of what the Monte Carlo estimates)."""
    n = scores.shape[0]
    rows = np.arange(n)
    a = (scores[rows, labels][:, None] - scores) / scale[:, None] - math.sqrt(2.0) * tau      # (n, K)
    cdf = stats.norm.cdf(a[:, :, None] + NODES[None, None, :])                                # (n, K, nodes)
    cdf[rows, labels, :] = 1.0
    return 1.0 - (cdf.prod(axis=1) @ WEIGHTS) / math.sqrt(2.0 * math.pi)


# ------------------------------------------------------------------------------------------------ formulas

def test_gaussian_kl_matches_numeric_integration_and_the_general_formula():
    # one dimension: ∫ q ln(q/p) by quadrature
    for mu_q, mu_p, s_q, s_p in [(0.3, -0.2, 0.7, 1.1), (2.0, 0.0, 0.5, 0.5), (-1.0, 0.5, 1.3, 0.9)]:
        q, p = stats.norm(mu_q, s_q), stats.norm(mu_p, s_p)
        numeric = integrate.quad(lambda x, q=q, p=p: q.pdf(x) * (q.logpdf(x) - p.logpdf(x)), -30, 30,
                                 limit=200)[0]
        assert float(gaussian_kl((mu_q - mu_p) ** 2, 1, s_q, s_p)) == pytest.approx(numeric, rel=1e-8, abs=1e-12)
    # D dimensions: the general Gaussian formula ½[tr(Σp⁻¹Σq) + Δᵀ Σp⁻¹ Δ − D + ln det Σp/det Σq]
    rng = np.random.default_rng(0)
    d, s_q, s_p = 37, 0.4, 1.7
    delta = rng.normal(size=d)
    cov_q, cov_p = s_q ** 2 * np.eye(d), s_p ** 2 * np.eye(d)
    inv_p = np.linalg.inv(cov_p)
    general = 0.5 * (np.trace(inv_p @ cov_q) + delta @ inv_p @ delta - d
                     + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1])
    assert float(gaussian_kl(delta @ delta, d, s_q, s_p)) == pytest.approx(general, rel=1e-12)
    # ... and E_Q[ln q − ln p] by Monte Carlo (5 standard errors)
    x = delta + s_q * rng.normal(size=(200_000, d))
    log_ratio = stats.norm.logpdf(x, delta, s_q).sum(1) - stats.norm.logpdf(x, 0.0, s_p).sum(1)
    assert abs(log_ratio.mean() - general) < 5 * log_ratio.std() / math.sqrt(len(log_ratio))
    # equal scales: ‖W − W₀‖²/(2σ²); the smallest KL over prior ratios >= 1 is 0, at ratio 1
    assert float(gaussian_kl(8.0, 1000, 2.0, 2.0)) == pytest.approx(1.0)
    assert float(np.min(gaussian_kl(0.0, 500, 1.0, np.array(PacBayesGrid().prior_ratios)))) == 0.0


def test_log_xi_is_the_binomial_moment_and_lies_between_sqrt_m_and_2_sqrt_m():
    for m in range(1, 41):  # exact integer arithmetic: ξ(m) = Σ_k C(m,k) k^k (m−k)^(m−k) / m^m
        exact = Fraction(sum(math.comb(m, k) * k ** k * (m - k) ** (m - k) for k in range(m + 1)), m ** m)
        assert log_xi(m) == pytest.approx(math.log(exact), rel=1e-12, abs=1e-13)
    for m in (1, 5, 30, 200):  # E_{Bin(m,p)} e^{m kl(k/m ‖ p)} = ξ(m) for every p in (0, 1) (in logs)
        for p in (0.01, 0.3, 0.5, 0.93):
            k = np.arange(m + 1)
            log_moment = logsumexp(binom.logpmf(k, m, p) + np.array([m * kl_bernoulli(j / m, p) for j in k]))
            assert log_moment == pytest.approx(log_xi(m), rel=1e-9)
    for m in range(1, 3001):  # Maurer 2004 (m >= 8), and checked here for every m >= 1
        assert 0.5 * math.log(m) - 1e-12 <= log_xi(m) <= math.log(2.0 * math.sqrt(m)) + 1e-12
    # beyond 10⁶ the code uses the upper value ln(2√m): never below the exact value
    assert log_xi(1_000_001) >= log_xi(1_000_000)


def test_the_moment_bound_holds_for_independent_non_identical_draws():
    """Hoeffding's convex order (proofs/pac_bayes_heads.md, Lemma 4): E e^{m kl(S/m ‖ p̄)} <= ξ(m) for a
    Poisson-binomial S, exactly (its pmf by convolution), with equality for identical p_i."""
    rng = np.random.default_rng(5)
    for m in (1, 2, 3, 7, 20, 60):
        for _ in range(20):
            p = rng.beta(0.4, 0.4, size=m) if rng.random() < 0.5 else rng.random(m)
            pmf = np.array([1.0])
            for pi in p:
                pmf = np.convolve(pmf, [1.0 - pi, pi])
            pbar = float(p.mean())
            moment = sum(pmf[k] * math.exp(m * kl_bernoulli(k / m, pbar)) for k in range(m + 1))
            assert math.log(moment) <= log_xi(m) + 1e-10
        k = np.arange(m + 1)
        log_moment = logsumexp(binom.logpmf(k, m, 0.37) + np.array([m * kl_bernoulli(j / m, 0.37) for j in k]))
        assert log_moment == pytest.approx(log_xi(m), rel=1e-9)


def test_kl_inverse_agrees_with_the_chernoff_inversion_and_is_never_below_it():
    for n in (1, 7, 50, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for delta in (0.3, 0.05, 1e-4):
                ours = float(kl_inverse_upper(k / n, math.log(1 / delta) / n))
                reference = kl_upper(k, n, delta)  # scipy brentq (binomial.py)
                assert ours == pytest.approx(reference, abs=1e-11)
                assert ours >= reference - 1e-13
    # by bisection on kl_bernoulli: kl(q ‖ r) = budget at the returned r, and r is the largest such value
    for q, budget in [(0.0, 0.2), (0.12, 0.05), (0.5, 0.001), (0.97, 0.3)]:
        r = float(kl_inverse_upper(q, budget))
        if r < 1.0:
            assert kl_bernoulli(q, r) == pytest.approx(budget, rel=1e-9)
            assert kl_bernoulli(q, min(1.0, r + 1e-7)) > budget
    assert float(kl_inverse_upper(0.3, 0.0)) == 0.3 and float(kl_inverse_upper(1.0, 0.5)) == 1.0
    rng = np.random.default_rng(1)
    q, b = np.sort(rng.random(200)), np.sort(rng.random(200))
    assert np.all(np.diff(kl_inverse_upper(q, 0.1)) >= 0) and np.all(np.diff(kl_inverse_upper(0.2, b)) >= 0)


def test_pac_bayes_kl_bound_inverts_the_stated_deviation():
    for q, kl, n, delta in [(0.1, 3.0, 500, 0.01), (0.0, 0.0, 30, 0.05), (0.4, 40.0, 2000, 1e-5)]:
        b = float(pac_bayes_kl_bound(q, kl, n, delta))
        budget = (kl + log_xi(n) + math.log(1 / delta)) / n
        assert b == float(kl_inverse_upper(q, budget))
        assert kl_bernoulli(q, b) == pytest.approx(budget, rel=1e-9)


def test_the_derandomisation_constant_is_phi_tau_and_sharp():
    assert float(derandomisation_factor(0.0)) == 2.0
    taus = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    sigma, norm = 0.37, 1.9
    # K = 2, a tie (margin exactly 0): P(M' <= τ√2σ‖z‖) = Φ(τ) — the inequality err <= L/Φ(τ) is an equality
    for tau in taus:
        p = gibbs_probability(np.array([[1.0, 1.0]]), np.array([0]), np.array([sigma * norm]), tau)
        assert float(p[0]) == pytest.approx(stats.norm.cdf(tau), abs=1e-12)
    # K = 4, points the deterministic scorer gets wrong (margin <= 0): P(M' <= τ√2σ‖z‖) >= Φ(τ)
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(500, 4)) * 2.0
    labels = rng.integers(0, 4, size=500)
    rows = np.arange(500)
    others = scores.copy()
    others[rows, labels] = -np.inf
    wrong = scores[rows, labels] - others.max(1) <= 0
    for tau in taus:
        p = gibbs_probability(scores[wrong], labels[wrong], np.full(wrong.sum(), sigma * norm), tau)
        assert np.all(p >= stats.norm.cdf(tau) - 1e-12)


def test_gibbs_counts_match_the_gaussian_cdf_in_one_dimension_and_quadrature_for_three_classes():
    rng = np.random.default_rng(3)
    # K = 2, one-dimensional features ψ₁ = ψ₂ = ±1: M(W + E) = m + N(0, 2σ²‖z‖²), so the probability is
    # Φ(τ − m/(√2σ‖z‖)) exactly
    n, draws = 40, 20_000
    x = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    y = (x < 0).astype(np.int64)
    z = np.stack([x, x], axis=1)
    w = np.array([[0.8, 0.3], [-0.5, -0.9]])
    scores = z @ w.T
    norms = np.linalg.norm(z, axis=1)
    sigmas, taus = [0.3, 1.0], [0.0, 1.0, 2.5]
    counts = gibbs_threshold_counts(scores, y, norms, sigmas, taus, 2, draws, np.random.default_rng(0))
    margin = np.where(y == 0, scores[:, 0] - scores[:, 1], scores[:, 1] - scores[:, 0])
    for a, sigma in enumerate(sigmas):
        for b, tau in enumerate(taus):
            exact = stats.norm.cdf(tau - margin / (math.sqrt(2.0) * sigma * norms))
            for c in range(2):
                mean, var = exact[y == c].sum(), (exact * (1 - exact))[y == c].sum()
                assert abs(counts[a, b, c] / draws - mean) <= 5 * math.sqrt(var / draws) + 1e-9
    # K = 3: against the quadrature of the same probability
    n = 30
    scores = rng.normal(size=(n, 3)) * 1.5
    y = rng.integers(0, 3, size=n)
    norms = rng.uniform(0.5, 2.0, size=n)
    counts = gibbs_threshold_counts(scores, y, norms, [0.7], [0.0, 1.5], 3, draws, np.random.default_rng(1))
    for b, tau in enumerate([0.0, 1.5]):
        exact = gibbs_probability(scores, y, 0.7 * norms, tau)
        for c in range(3):
            mean, var = exact[y == c].sum(), (exact * (1 - exact))[y == c].sum()
            assert abs(counts[0, b, c] / draws - mean) <= 5 * math.sqrt(var / draws) + 1e-9


# ------------------------------------------------------------------------------------------- the record

def _one_dimensional_run(**kwargs):
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], [60, 25])
    x = np.where(rng.random(y.size) < 0.85, np.where(y == 0, 1.0, -1.0), np.where(y == 0, -1.0, 1.0))
    psi = x[:, None]
    u, v = np.array([[0.9], [-0.9]]), np.array([[0.4], [-0.4]])
    scores = psi @ u.T + psi @ v.T
    return psi, scores, y, (u, v), fused_model_bounds(
        psi, psi, scores, y, num_classes=2, radius_penult=1.0, radius_final=1.0, grid=GRID, n_draws=0,
        statements=["pac_bayes"], head_weights=(u, v), **kwargs)


def test_the_record_is_reproduced_by_hand_in_one_dimension():
    _, scores, y, (u, v), rep = _one_dimensional_run(feature_norm_bound=1.0, scale=1.0)
    delta = rep.context.delta
    g = PacBayesGrid()
    for c in (0, 1):
        r = rep.record("pac_bayes", f"class:{c}")
        t = r.terms
        n_c = int((y == c).sum())
        assert t["n"] == n_c and t["trials"] == n_c * t["draws"]
        assert t["gibbs_margin_loss_upper"] == kl_upper(t["draw_events"], t["trials"], t["delta_draws_each"])
        assert t["kl"] == pytest.approx(float(gaussian_kl(t["distance_sq"], 4, t["sigma"], t["prior_scale"])))
        assert t["distance_sq"] == pytest.approx(float(np.sum(u ** 2) + np.sum(v ** 2)))  # data-free prior at 0
        assert t["deviation"] == pytest.approx((t["kl"] + log_xi(n_c) + math.log(1 / t["delta_each"])) / n_c)
        assert t["gibbs_margin_risk_bound"] == float(kl_inverse_upper(t["gibbs_margin_loss_upper"], t["deviation"]))
        assert r.bound == pytest.approx(t["gibbs_margin_risk_bound"] / stats.norm.cdf(t["tau"]), rel=1e-12)
        # the Monte Carlo estimate against the closed form Φ(τ − m/(√2σ‖z‖)) (‖z‖ = √2), and its upper value
        m = np.where(y == 0, scores[:, 0] - scores[:, 1], scores[:, 1] - scores[:, 0])[y == c]
        exact = float(stats.norm.cdf(t["tau"] - m / (2.0 * t["sigma"])).mean())
        assert t["gibbs_margin_loss_upper"] >= exact
        assert abs(t["gibbs_margin_loss"] - exact) <= 5 * math.sqrt(max(exact * (1 - exact), 1e-4) / t["trials"])
    # the δ accounting: draws + class event + pooled event = δ, each split evenly
    s = rep.record("pac_bayes", "class:0").terms["delta_split"]
    assert s["draws"] + s["class_event"] + s["pooled_event"] == pytest.approx(delta)
    assert s["draws"] == pytest.approx(DRAWS_SHARE * delta)
    assert s["class_each"] * 2 * g.size == pytest.approx(s["class_event"])      # K₊ = 2 classes
    assert s["pooled_each"] * g.size == pytest.approx(s["pooled_event"])
    assert s["draws_each"] * len(g.sigma_factors) * len(g.taus) * 3 == pytest.approx(s["draws"])
    # aggregates from the class event
    b = [rep.record("pac_bayes", f"class:{c}").bound for c in (0, 1)]
    assert rep.record("pac_bayes", "balanced").bound == pytest.approx(np.mean(b))
    assert rep.record("pac_bayes", "worst_class").bound == pytest.approx(max(b))
    pooled_or_weighted = rep.record("pac_bayes", "overall")
    assert pooled_or_weighted.bound <= (60 * b[0] + 25 * b[1]) / 85 + 1e-12


def test_the_statement_appears_in_fused_model_bounds_with_every_field():
    rng = np.random.default_rng(6)
    k, d = 3, 4
    y = np.repeat([0, 1, 2], [70, 30, 0])  # class 2 has no sample
    psi1 = rng.normal(size=(y.size, d)) + 2.0 * np.eye(k, d)[y]
    psi1 /= np.linalg.norm(psi1, axis=1, keepdims=True)
    psi2 = np.roll(psi1, 1, axis=1)
    u = 2.0 * np.eye(k, d)
    v = np.roll(np.eye(k, d), 1, axis=1)
    scores = psi1 @ u.T + psi2 @ v.T
    common = {"num_classes": k, "radius_penult": 2.0, "radius_final": 1.0, "grid": GRID, "n_draws": 0,
              "feature_norm_bound": 1.0, "class_groups": ["head", "tail", "tail"], "scale": 1.0}
    rep = fused_model_bounds(psi1, psi2, scores, y, head_weights=(u, v), **common)  # default statements
    mine = [r for r in rep.records if r.name == "pac_bayes"]
    assert {r.target for r in mine} == {"overall", "balanced", "class:0", "class:1", "class:2", "group:head",
                                        "group:tail", "worst_class"}
    quantity = {"overall": "prior-weighted error", "balanced": "balanced error", "worst_class": "worst-class error"}
    for r in mine:
        assert r.family == "pac-bayes" and r.theory == "THEORY §8, PAC-Bayes" and r.event == "pac_bayes"
        assert r.bounds_quantity == quantity.get(r.target, "class error" if r.target.startswith("class:")
                                                 else "group balanced error")
        assert r.delta == rep.context.delta and r.certificate is False  # diagnostic: the features saw S
        if r.target == "class:2":
            assert r.bound is None and r.reason == "no training samples"
            continue
        assert r.floor <= r.bound + 1e-12 and r.vacuous == (r.bound > 1) and r.vacuous_by_construction == (r.floor >= 1)
        assert r.n_for_nonvacuous is None or r.n_for_nonvacuous > 0
    for c in (0, 1):
        t = rep.record("pac_bayes", f"class:{c}").terms
        assert {"sigma", "prior_scale", "tau", "kl", "gibbs_margin_loss", "gibbs_margin_loss_upper", "deviation",
                "draws", "trials", "delta_each", "delta_draws_each", "delta_split", "gibbs_margin_risk_bound",
                "derandomisation_factor", "gibbs_error_bound", "prior", "grid_size"} <= set(t)
        assert t["draws"] == 1000 and "data-free" in t["prior"]
    assert rep.record("pac_bayes", "worst_class").terms["class"] in (0, 1)
    # deterministic: the same seed gives the same records; another seed other draws
    again = fused_model_bounds(psi1, psi2, scores, y, head_weights=(u, v), statements=["pac_bayes"], **common)
    assert list(again.records) == mine
    other = fused_model_bounds(psi1, psi2, scores, y, head_weights=(u, v), statements=["pac_bayes"], seed=1, **common)
    assert other.record("pac_bayes", "class:0").terms["draw_events"] != \
        rep.record("pac_bayes", "class:0").terms["draw_events"]
    # a certificate where the features are fixed before S; the certified prior is the S_A heads
    for validity in ("certified", "fixed-features"):
        r = fused_model_bounds(psi1, psi2, scores, y, head_weights=(u, v), statements=["pac_bayes"],
                               validity=validity, **common).record("pac_bayes", "class:0")
        assert r.certificate is True
    prior = fused_model_bounds(psi1, psi2, scores, y, head_weights=(u, v), prior_head_weights=(0.9 * u, 1.1 * v),
                               statements=["pac_bayes"], validity="certified", **common).record("pac_bayes", "class:0")
    assert prior.terms["distance_sq"] == pytest.approx(0.01 * (np.sum(u ** 2) + np.sum(v ** 2)))
    assert "S_A heads" in prior.terms["prior"]
    # without the head weights the statement does not apply
    assert not [r for r in fused_model_bounds(psi1, psi2, scores, y, **common).records if r.name == "pac_bayes"]


def test_the_floor_is_the_value_of_a_perfect_classifier_at_its_prior_centre():
    """W = W₀ (KL = 0 at ratio 1) and margins far beyond every threshold at the smallest σ: no perturbation event,
    so the bound is exactly the floor (zero empirical loss, the smallest KL of the grid, the largest τ)."""
    y = np.repeat([0, 1], [50, 20])
    psi = np.where(y == 0, 1.0, -1.0)[:, None]
    u = v = np.array([[50.0], [-50.0]])
    scores = psi @ u.T + psi @ v.T
    rep = fused_model_bounds(psi, psi, scores, y, num_classes=2, radius_penult=50.0, radius_final=50.0, grid=GRID,
                             n_draws=0, head_weights=(u, v), prior_head_weights=(u, v), scale=1.0,
                             validity="certified", statements=["pac_bayes"])
    for target in ("class:0", "class:1", "balanced", "worst_class", "overall"):
        r = rep.record("pac_bayes", target)
        assert r.bound == pytest.approx(r.floor, rel=1e-12), target
    t = rep.record("pac_bayes", "class:1").terms
    assert t["kl"] == 0.0 and t["draw_events"] == 0 and t["tau"] == max(PacBayesGrid().taus)
    assert rep.record("pac_bayes", "class:1").floor == pytest.approx(float(
        kl_inverse_upper(kl_upper(0, 20 * t["draws"], t["delta_draws_each"]),
                         (log_xi(20) + math.log(1 / t["delta_each"])) / 20) / stats.norm.cdf(3.0)))


# ------------------------------------------------------------------------------- repeated-trial validity

K3, J = 3, 8
COUNTS = np.array([600, 240, 60])  # fixed by design, not drawn
N3 = int(COUNTS.sum())
GROUPS = ("head", "tail", "tail")
T, DELTA = 100, 0.1
THRESHOLD = int(binom.ppf(0.999, T, DELTA))
B1, B2 = 2.0, 1.0
TRIAL_STATEMENT = PacBayes(draws=60, project=False)   # the statement's code, fewer draws, no projection


def _support() -> tuple[np.ndarray, np.ndarray]:
    """D_c = a distribution on J unit vectors ψ₁ (ψ₂ = ROT ψ₁), fixed once: 6 near e_c, 2 near e_{c+1} (so every
    scorer errs on part of every class); exact class risks are finite sums."""
    rng = np.random.default_rng(11)
    points, probs = [], []
    for c in range(K3):
        x = np.vstack([np.eye(3)[c] + 0.6 * rng.normal(size=(6, 3)),
                       np.eye(3)[(c + 1) % 3] + 0.6 * rng.normal(size=(2, 3))])
        points.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        probs.append(rng.dirichlet(np.full(J, 3.0)))
    return np.stack(points), np.stack(probs)


SUPPORT, PROBS = _support()


def _rows(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and ‖z‖ of every support point (K·J rows)."""
    psi1 = SUPPORT.reshape(-1, 3)
    return psi1 @ u.T + (psi1 @ ROT.T) @ v.T, np.repeat(np.arange(K3), J), np.linalg.norm(
        np.concatenate([psi1, psi1 @ ROT.T], axis=1), axis=1)


def class_risks(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores, labels, _ = _rows(u, v)
    others = scores.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    wrong = (scores[np.arange(len(labels)), labels] - others.max(1) <= 0).reshape(K3, J)
    return (PROBS * wrong).sum(axis=1)


def target_risk(target: str, risk_c: np.ndarray) -> float:
    if target == "overall":
        return float(risk_c @ COUNTS / N3)
    if target.startswith("class:"):
        return float(risk_c[int(target[6:])])
    if target == "worst_class":
        return float(risk_c.max())
    members = range(K3) if target == "balanced" else [c for c in range(K3) if GROUPS[c] == target[6:]]
    return float(np.mean([risk_c[c] for c in members]))


def draw_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_i ~ D_{y_i} for the fixed labels; also the number of draws of every support point (K, J)."""
    hits = np.stack([rng.multinomial(COUNTS[c], PROBS[c]) for c in range(K3)])
    psi1 = np.repeat(SUPPORT.reshape(-1, 3), hits.ravel(), axis=0)
    y = np.repeat(np.repeat(np.arange(K3), J), hits.ravel())
    return psi1, psi1 @ ROT.T, y, hits


def _unit_rows(w: np.ndarray) -> np.ndarray:
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def _fixed_scorer() -> tuple[np.ndarray, np.ndarray]:
    """W* = (U*, V*): the population class means of each feature map, rows scaled to (B₁, B₂); fixed before S."""
    mean1 = np.stack([(PROBS[c][:, None] * SUPPORT[c]).sum(0) for c in range(K3)])
    return B1 * _unit_rows(mean1), B2 * _unit_rows(mean1 @ ROT.T)


def _posterior_family() -> list[tuple[np.ndarray, float, float]]:
    """(W_m, σ_m, KL_m), fixed before the trials: posteriors N(W_m, σ_m² I) around W* + Δ_m, for the prior
    N(W*, σ_P² I), σ_P = 0.1 (noise below the support's margins, so the Gibbs errors differ from point to point);
    KL_m from 0.02 to 6."""
    rng = np.random.default_rng(21)
    sigma_p, dim = 0.1, K3 * 6
    centre = np.concatenate(_fixed_scorer(), axis=1)
    out = []
    for kl_target in np.geomspace(0.02, 6.0, 24):
        sigma = sigma_p * float(rng.choice([0.9, 1.0, 1.0]))
        base = float(gaussian_kl(0.0, dim, sigma, sigma_p))
        step = rng.normal(size=(K3, 6))
        step *= sigma_p * math.sqrt(2.0 * max(kl_target - base, 1e-4)) / np.linalg.norm(step)
        out.append((centre + step, sigma, float(gaussian_kl(np.sum(step ** 2), dim, sigma, sigma_p))))
    return out


def _ln_dropped(ev: dict, cv) -> float:
    """The mutant: the statement's own grid evaluation with kl⁻¹(Ū, KL/n) — the ln(ξ(n)/δ) term dropped."""
    factor = derandomisation_factor(ev["taus"])
    return float(np.min(kl_inverse_upper(cv.upper[:, None, :], ev["kl"][:, :, None] / cv.n) * factor))


def run_trials() -> dict:
    # the fixed scorer W* and its certified-style prior centred on it
    u_star, v_star = _fixed_scorer()
    risk_star = class_risks(u_star, v_star)
    # the posterior family: exact Gibbs error (τ = 0) of every support point, and the exact class risks
    family = _posterior_family()
    point_p = []
    for w, sigma, _ in family:
        scores, labels, norms = _rows(w[:, :3], w[:, 3:])
        point_p.append(gibbs_probability(scores, labels, sigma * norms).reshape(K3, J))
    point_p = np.stack(point_p)                                      # (M, K, J)
    gibbs_risk = (point_p * PROBS[None]).sum(axis=2)                 # (M, K)
    kls = np.array([kl for _, _, kl in family])
    g = TRIAL_STATEMENT.grid
    d_pb = (1 - DRAWS_SHARE) * DELTA
    d_class, d_pool = d_pb / 2 / (K3 * g.size), d_pb / 2 / g.size

    targets = ["overall", "balanced", "worst_class", "group:head", "group:tail"] + [f"class:{c}" for c in range(K3)]
    out = {"fitted": 0, "fixed": 0, "fixed_mutant": 0, "gibbs": 0, "gibbs_mutant": 0, "fitted_bounds": []}
    rng = np.random.default_rng(7)
    for _ in range(T):
        psi1, psi2, y, hits = draw_sample(rng)
        estimation = Estimation(GRID, delta=DELTA, n_draws=0, seed=int(rng.integers(1 << 30)),
                                validity="fixed-features")

        def sample(u, v, psi1=psi1, psi2=psi2, y=y):
            return Sample(psi1, psi2, psi1 @ u.T + psi2 @ v.T, y, K3, class_groups=list(GROUPS))

        # (a) the scorer fitted on S (normalised class means), data-free prior
        u = B1 * _unit_rows(np.stack([psi1[y == c].mean(0) for c in range(K3)]))
        v = B2 * _unit_rows(np.stack([psi2[y == c].mean(0) for c in range(K3)]))
        ctx = build_context(sample(u, v), Hypothesis(B1, B2, feature_norm_bound=1.0, head_weights=(u, v)), estimation)
        records = {r.target: r for r in TRIAL_STATEMENT.evaluate(ctx, DELTA)}
        risk = class_risks(u, v)
        out["fitted"] += int(any(records[t].bound < target_risk(t, risk) for t in targets))
        out["fitted_bounds"].append((records["overall"].bound, target_risk("overall", risk)))
        # (b) the fixed scorer W* with the prior centred on it (KL = 0 at ratio 1): the statement and the mutant
        # with the ln(ξ(n)/δ) term dropped, from the statement's own grid evaluation
        ctx = build_context(sample(u_star, v_star), Hypothesis(B1, B2, feature_norm_bound=1.0,
                                                               head_weights=(u_star, v_star),
                                                               prior_head_weights=(u_star, v_star)),
                            dataclasses.replace(estimation, validity="certified"))
        ev = TRIAL_STATEMENT._evaluate(ctx, DELTA)
        records = {r.target: r for r in TRIAL_STATEMENT.records(ctx, DELTA, ev)}
        out["fixed"] += int(any(records[t].bound < target_risk(t, risk_star) for t in targets))
        fails = [_ln_dropped(ev, ev["curves"][c]) < risk_star[c] for c in range(K3)]
        fails.append(_ln_dropped(ev, ev["pooled"]) < target_risk("overall", risk_star))
        out["fixed_mutant"] += int(any(fails))
        # (c) PAC-Bayes-kl for the Gibbs classifiers of the whole family at once (one prior, exact risks, no MC)
        emp = (point_p * (hits / COUNTS[:, None])[None]).sum(axis=2)           # (M, K) exact L̂_c(Q_m)
        dev_c = (kls[:, None] + np.array([log_xi(n) for n in COUNTS])[None] + math.log(1 / d_class)) / COUNTS[None]
        emp_pool = (emp * COUNTS[None]).sum(1) / N3
        risk_pool = (gibbs_risk * COUNTS[None]).sum(1) / N3
        dev_pool = (kls + log_xi(N3) + math.log(1 / d_pool)) / N3
        ok = np.all(kl_inverse_upper(emp, dev_c) >= gibbs_risk) and np.all(
            kl_inverse_upper(emp_pool, dev_pool) >= risk_pool)
        out["gibbs"] += int(not ok)
        bad = np.any(kl_inverse_upper(emp, kls[:, None] / COUNTS[None]) < gibbs_risk) or np.any(
            kl_inverse_upper(emp_pool, kls / N3) < risk_pool)
        out["gibbs_mutant"] += int(bad)
    return out


@pytest.fixture(scope="module")
def trials() -> dict:
    return run_trials()


@pytest.mark.parametrize("case", ["fitted", "fixed", "gibbs"])
def test_the_statement_holds_with_fixed_class_counts_in_repeated_trials(trials, case):
    """Every target (classes, balanced, groups, worst class, prior-weighted) of the fitted scorer with a data-free
    prior, of a fixed scorer with the prior centred on it, and the Gibbs errors of a family of posteriors."""
    assert trials[case] <= THRESHOLD, trials


@pytest.mark.parametrize("case", ["fixed", "gibbs"])
def test_the_check_rejects_the_bound_without_its_ln_term_on_the_same_trials(trials, case):
    failures = trials[f"{case}_mutant"]
    assert failures > THRESHOLD and binom.sf(failures - 1, T, DELTA) < 1e-6, trials


def test_the_fitted_bound_is_informative_on_this_distribution(trials):
    """Not vacuous here: the prior-weighted bound of the fitted scorer (data-free prior) stays below 1 and on
    average within 0.3 of its exact risk."""
    bounds, risks = np.array(trials["fitted_bounds"]).T
    assert bounds.max() < 1.0 and (bounds - risks).mean() < 0.3, (bounds.max(), (bounds - risks).mean())
