"""Checks with power: exact cases where the constants of THEORY §3-§5 are (nearly) necessary, and the constants
that no honest case can show necessary, re-derived from the proofs' steps.

Why this file exists: an audit found that the repeated-trials validity tests still pass with the complexity
divided by 10 and the confidence by 3, and the contraction / Monte Carlo tests with 1/rho for 2/rho and the
McDiarmid deviation divided by 5. A check that passes for wrong constants has no power. Every check below is a
plain function without fixtures (tests/test_mutants.py runs them in-process against mutated libraries); each
says how close its inequality is to equality.

Tight cases (a wrong constant breaks the inequality)
----------------------------------------------------
* **Contraction (Lemma 5.2(b)).** The "margin-switch" class: f_u(x_i) = (u_i/2)(e_{y_i} - e_{c_i}) - L(other
  coordinates), u in {0, a}^n, a <= rho. Its margin is u_i, so Phi_rho o M o F = {1 - u_i/rho} and
  R_hat(Phi_rho o M o F) = a/(2 rho) = (2/rho) R_hat^v(F) exactly (R_hat^v(F) = a/4). Equality, by exact
  enumeration: the constant 2/rho = sqrt2 * sqrt2/rho cannot be lowered at all.
* **Margin bounds (Theorem 5.3, Corollary 5.4, the weighted bound) and Lemma 5.2(c).** The same class on a
  huge finite set A (N points, each of mass q/N; the rest of the mass on one point b where every scorer has
  margin rho). The worst scorer of a sample has margin rho on the sample (margin loss 0) and 0 off it, so its
  risk is q(1 - k/N) for k distinct sample points of A, while the complexity term is exactly
  2 * (2/rho) * (rho/4)(k/n) = k/n: the complexity term equals the expected worst-case deviation; the only
  slack left is the confidence term (+ k/N). The failure probability over S is computed exactly (binomial
  law of k, collisions among the N points bounded by k^2/(2N)); complexity / 2 (or 1/rho for 2/rho) fails
  with probability ~1.
* **Monte Carlo certificate (THEORY §5).** Two equal features (n = 2, d = 1): the per-draw sup is
  (B K/n)|sigma_1 + sigma_2| in {0, B K}, the largest spread one sign may cause (2 B K ||psi_i|| / n). The
  MC mean is B K Bin(m, 1/2)/m, so the coverage probability of the certificate is computed exactly; with
  the deviation / 2 it fails with probability 4-6 x delta_mc. Also as seeded repetitions of the library's
  own sign stream.
* **Union over K classes (Corollary 5.4).** A fixed scorer (complexity exactly 0) whose per-class errors are
  independent Bernoulli(p) given the labels: the exact probability that some class's bound fails is
  1 - (1 - P_c)^K. Because the per-class confidence term is loose (factor ~5, see below), ln K is necessary only
  for huge K: with K = 10^7 classes of 500 samples, delta = 0.5, dropping ln K fails w.p. ~0.96.

Constants no honest case can show necessary (checked against an independent derivation instead)
-----------------------------------------------------------------------------------------------
* The confidence term 3 sqrt(ln(2/delta)/(2n)): McDiarmid twice. In the worst exact case found (all
  functions on a set of mass q, where sup deviation - 2 R_hat = q - Bin(n, q)/n exactly) the bound would still
  hold with the confidence term divided by ~5; halving it cannot be caught by any validity check I could
  build. It is re-derived here from McDiarmid's inequality with the proof's bounded differences (1/n for the
  deviation, 1/n for R_hat, doubled; delta/2 each; delta/(K m) per application), and the weighted term from
  bounded differences w_i.
* The contraction factor, the complexity term 2 (2/rho)(r_1 + r_2), the McDiarmid deviation of the MC
  certificate (bounded differences found by enumerating sign flips) and the bounded-features form are also
  recomputed from the proof steps.

All oracles here (margin, ramp, enumeration over sign patterns) are written in this file, not imported.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
from scipy.stats import binom

from scilt_theory import bounds, rademacher
from scilt_theory.grid import BoundGrid


def _corollary54(margins_, labels, rc_penult, rc_final, k, delta, grid, b1, b2) -> dict[int, dict]:
    """The corollary54 statement's class terms (with ``bound``) on these margins, with given unit complexities."""
    import dataclasses

    from scilt_theory.statements import Estimation, Hypothesis, Sample, build_context
    from scilt_theory.statements.complexities import Complexities
    from scilt_theory.statements.margin import MARGIN

    n = labels.size
    scores = np.zeros((n, k))
    scores[np.arange(n), labels] = margins_  # every other score 0: the margin is the label's score
    psi = np.zeros((n, 1))
    ctx = build_context(Sample(psi, psi, scores, labels, k), Hypothesis(b1, b2),
                        Estimation(grid, delta=delta, n_draws=0))
    given = {c: (rc_penult[c], rc_final[c]) for c in range(k) if rc_penult[c] is not None}
    ctx = dataclasses.replace(ctx, complexities=Complexities.given(k, (0.0, 0.0), given))
    records = MARGIN["corollary54"].evaluate(ctx, delta)
    return {int(r.target.split(":")[1]): {**r.terms, "bound": r.bound} for r in records
            if r.target.startswith("class:") and r.bound is not None}


REL = 1e-12


# ----------------------------------------------------------------------------------------------------------
# independent oracles
# ----------------------------------------------------------------------------------------------------------

def all_signs(width: int) -> np.ndarray:
    return np.array(list(itertools.product((-1.0, 1.0), repeat=width)))


def naive_erc(values: np.ndarray) -> float:
    """E_sigma max_a (1/n) sum_i sigma_i a_i over all 2^n sign vectors; values (|A|, n)."""
    n = values.shape[1]
    return float(np.mean(np.max(all_signs(n) @ values.T, axis=1)) / n)


def naive_vector_erc(values: np.ndarray) -> float:
    """E_Sigma max_a (1/n) sum_{i,c} Sigma_ic a_c(x_i) over all 2^{nK} sign matrices; values (|A|, n, K)."""
    _, n, k = values.shape
    sig = all_signs(n * k).reshape(-1, n, k)
    return float(np.mean(np.max(np.einsum("snk,ank->sa", sig, values), axis=1)) / n)


def margin(v: np.ndarray, y: int) -> float:
    """M(v, y) = v_y - max_{c != y} v_c (THEORY §0)."""
    return float(v[y] - np.max(np.delete(v, y)))


def ramp(t: float, rho: float) -> float:
    """Phi_rho (THEORY §0)."""
    return 1.0 if t <= 0 else (1.0 - t / rho if t < rho else 0.0)


def mcdiarmid(diffs: np.ndarray | float, delta: float, count: int = 1) -> float:
    """McDiarmid (1989), one tail: with bounded differences c_k, P(phi - E phi >= t) <= exp(-2 t^2 / sum c_k^2),
    so t = sqrt(sum c_k^2 ln(1/delta) / 2) at level delta. ``count`` repeats a scalar difference."""
    c2 = float(np.sum(np.square(diffs))) * (count if np.ndim(diffs) == 0 else 1)
    return math.sqrt(c2 * math.log(1.0 / delta) / 2.0)


def _close(lib: float, derived: float, what: str, rel: float = 1e-10) -> None:
    if not math.isclose(lib, derived, rel_tol=rel, abs_tol=1e-300):
        ratio = lib / derived if derived else float("inf")
        raise AssertionError(f"{what}: library {lib!r} != derived {derived!r} (library/derived = {ratio:.6g})")


# ----------------------------------------------------------------------------------------------------------
# the margin-switch class (tight for the contraction and for the complexity term)
# ----------------------------------------------------------------------------------------------------------

def margin_switch_class(n: int, k: int, a: float, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n members f_u, u in {0, a}^n: f_u(x_i) = (u_i/2)(e_{y_i} - e_{c_i}) - (a + 1) on the other K - 2
    coordinates, for seeded labels y_i and runner-up classes c_i != y_i (seed None: y_i = 0, c_i = 1).
    Margin M(f_u(x_i), y_i) = u_i. Returns (values (2^n, n, K), labels)."""
    if seed is None:
        y, runner = np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        y = rng.integers(k, size=n)
        runner = (y + rng.integers(1, k, size=n)) % k
    u = a * np.array(list(itertools.product((0.0, 1.0), repeat=n)))            # (2^n, n)
    values = np.full((u.shape[0], n, k), -(a + 1.0))
    rows = np.arange(n)
    values[:, rows, y] = u / 2
    values[:, rows, runner] = -u / 2
    return values, y


def _contraction_case(n: int, k: int, rho: float, a: float, seed: int) -> None:
    values, y = margin_switch_class(n, k, a, seed)
    loss = np.array([[ramp(margin(f[i], int(y[i])), rho) for i in range(n)] for f in values])
    lhs, rhs = rademacher.rademacher_finite(loss).value, rademacher.rademacher_finite_vector(values).value
    # the library's enumeration agrees with the independent one, and the case is the analytic one
    _close(lhs, naive_erc(loss), "R_hat(loss class), library vs naive enumeration")
    _close(rhs, naive_vector_erc(values), "R_hat^v(F), library vs naive enumeration")
    _close(lhs, a / (2 * rho), "R_hat(Phi o M o F) = a/(2 rho)")
    _close(rhs, a / 4, "R_hat^v(F) = a/4")
    factor = bounds.contraction_factor(rho)
    assert lhs <= factor * rhs * (1 + REL), (
        f"Lemma 5.2(b) fails on the margin-switch class (n={n}, K={k}, rho={rho}, a={a}): R_hat(Phi o M o F) = "
        f"{lhs:.6g} > contraction_factor * R_hat^v = {factor:.6g} * {rhs:.6g} = {factor * rhs:.6g} "
        f"(ratio {lhs / (factor * rhs):.4f})")


def test_lemma52b_ramp_of_margin_contraction_is_attained_exactly():
    # R_hat(Phi_rho o M o F) = (2/rho) R_hat^v(F) with equality: any factor below 2/rho (e.g. 1/rho) fails by 2x
    _contraction_case(n=4, k=2, rho=0.5, a=0.5, seed=0)
    _contraction_case(n=4, k=3, rho=0.8, a=0.8, seed=1)        # K = 3: a constant third coordinate adds 0
    _contraction_case(n=3, k=4, rho=1.3, a=0.6 * 1.3, seed=2)  # a < rho: the loss only moves along the ramp


# ----------------------------------------------------------------------------------------------------------
# the margin bounds with a complexity term equal to the worst-case deviation
# ----------------------------------------------------------------------------------------------------------

N_POINTS = 10**9          # |A|: every point of A has mass q / N_POINTS


def _collision_prob(k: np.ndarray | int) -> np.ndarray:
    """Upper bound k(k-1)/(2N) on the probability that k i.i.d. uniform points of A are not distinct."""
    k = np.asarray(k, dtype=np.float64)
    return np.minimum(1.0, k * (k - 1) / (2.0 * N_POINTS))


def _distinct_prob(k: int) -> float:
    """Exact probability that k i.i.d. uniform points of A are distinct."""
    return float(np.exp(np.sum(np.log1p(-np.arange(k) / N_POINTS))))


def _failure_probability(n: int, q: float, bound_of_k, risk_of_k) -> tuple[float, float]:
    """(lower, upper) on P_S(the bound fails for the worst scorer) when k ~ Bin(n, q) sample points fall in A.

    On samples whose A-points are distinct the worst scorer's bound is bound_of_k(k) and its risk risk_of_k(k)
    (exact); other samples are counted as failures in the upper value and as successes in the lower one."""
    ks = np.arange(n + 1)
    pmf = binom.pmf(ks, n, q)
    fails = np.array([risk_of_k(int(k)) > bound_of_k(int(k)) for k in ks])
    lower = float(sum(pmf[k] * _distinct_prob(int(k)) for k in ks if fails[k]))
    upper = float(np.sum(pmf[fails]) + np.sum(pmf * _collision_prob(ks)))
    return lower, min(1.0, upper)


def test_margin_switch_class_complexity_decomposes_per_point():
    # the per-point decomposition used below, by exact enumeration (k = 4 distinct points of A, K = 2,
    # everything labelled 0) plus one point b with a fixed scorer value: R_hat^v = (rho/4)(k/n), n = 5
    rho = 0.5
    values, _ = margin_switch_class(4, 2, rho, seed=None)
    values = np.concatenate([values, np.tile([[[rho / 2, -rho / 2]]], (values.shape[0], 1, 1))], axis=1)  # b
    exact = rademacher.rademacher_finite_vector(values).value
    _close(exact, (rho / 4) * 4 / 5, "R_hat^v of the switch class on 4 points of A and 1 point b")


def test_theorem53_complexity_term_is_necessary_exact_failure_probability():
    # q = 1/2 of the mass on A, n = 400, delta = 0.05: the complexity term is k/n, the expected worst deviation
    # is q; the bound fails only if k/n < q - confidence (probability ~1e-30).
    n, q, rho, delta = 400, 0.5, 0.5, 0.05

    def bound_of_k(k):
        rc = (rho / 4) * (k / n)            # R_hat^v(F) on a sample with k distinct points of A
        return bounds.theorem53_bound(0.0, rc / 2, rc / 2, n, rho, delta).bound   # F = F/2 + F/2 (Lemma 5.1)

    lower, upper = _failure_probability(n, q, bound_of_k, lambda k: q * (1 - k / N_POINTS))
    assert upper <= delta, (f"Theorem 5.3 fails on the switch class w.p. >= {lower:.4g} (<= {upper:.4g}) > delta "
                            f"= {delta}; worst-case slack at k = n q: bound - risk = "
                            f"{bound_of_k(int(n * q)) - q * (1 - n * q / N_POINTS):+.4f}")


def test_theorem53_grid_entry_point_on_the_switch_class():
    # all of S in A (q = 1), through theorem53_grid_bound with the worst scorer's margins (all equal to rho)
    n, rho, delta = 400, 0.5, 0.05
    rc_unit = rho / 8                        # each half of F at radius 1
    res = bounds.theorem53_grid_bound(np.full(n, rho), rc_unit, rc_unit, delta, BoundGrid(rhos=(rho,)),
                                      1.0, 1.0)
    risk = 1 - n / N_POINTS
    assert res.best.train_margin_loss == 0.0
    assert res.best.bound >= risk and _collision_prob(n) <= delta, (
        f"theorem53_grid_bound: bound {res.best.bound:.4f} < worst risk {risk:.6f} on every distinct sample "
        f"(complexity {res.best.complexity:.4f}, confidence {res.best.confidence:.4f})")


def test_corollary54_complexity_term_is_necessary_every_class():
    # two classes, labels fixed (400, 300), all of each class's mass on its own A_c; K = 2 per-class bounds, all at
    # once: corollary54_class_bound and the corollary54 statement on the worst scorer
    counts, rho, delta, k_cls = (400, 300), 0.5, 0.05, 2
    labels = np.repeat(np.arange(k_cls), counts)
    rc = [rho / 8, rho / 8]                  # per class, each half of F, on n_c distinct points
    res = _corollary54(np.full(labels.size, rho), labels, rc, rc, k_cls, delta, BoundGrid(rhos=(rho,)), 1.0, 1.0)
    p_collision = float(np.sum(_collision_prob(np.array(counts))))
    assert p_collision <= delta
    for c, n_c in enumerate(counts):
        risk = 1 - n_c / N_POINTS
        single = bounds.corollary54_class_bound(0.0, rho / 8, rho / 8, n_c, rho, delta, k_cls)
        for name, t in (("corollary54_class_bound", single.to_dict()), ("corollary54", res[c])):
            assert t["bound"] >= risk, (f"{name}: class {c} bound {t['bound']:.4f} < its worst risk {risk:.6f} on "
                                        f"every distinct sample (complexity {t['complexity']:.4f}, confidence "
                                        f"{t['confidence']:.4f})")


def test_weighted_margin_bound_complexity_term_is_necessary_balanced_error():
    # balanced weights w_i = 1/(2 n_{y_i}), counts (300, 50): the weighted complexity of the switch class is
    # sum_i w_i rho/4 = rho/4 per unit of weight (checked by enumeration at small n), the target is the balanced
    # error of the worst scorer, 1 - (n_c/N) averaged
    counts, rho, delta = (300, 50), 0.5, 0.05
    w_small = np.array([1 / 4, 1 / 4, 1 / 2])           # n = (2, 1): weights 1/(2 n_c)
    values, _ = margin_switch_class(3, 2, rho, seed=None)          # label 0 everywhere: (u/2, -u/2)
    exact_w = 3 * rademacher.rademacher_finite_vector(values * w_small[None, :, None]).value   # n' R_hat^v
    _close(exact_w, rho / 4 * w_small.sum(), "weighted complexity of the switch class")
    w = np.concatenate([np.full(counts[0], 1 / (2 * counts[0])), np.full(counts[1], 1 / (2 * counts[1]))])
    t = bounds.weighted_margin_bound(0.0, rho / 8, rho / 8, float(np.sum(w ** 2)), rho, delta)
    target = np.mean([1 - n_c / N_POINTS for n_c in counts])
    assert float(np.sum(_collision_prob(np.array(counts)))) <= delta
    assert t.bound >= target, (f"weighted margin bound {t.bound:.4f} < balanced error of the worst scorer "
                               f"{target:.6f} on every distinct sample (complexity {t.complexity:.4f}, "
                               f"confidence {t.confidence:.4f})")
    # and with w_i = 1/n it is Theorem 5.3's number on the same case
    n = sum(counts)
    t_uniform = bounds.weighted_margin_bound(0.0, rho / 8, rho / 8, 1.0 / n, rho, delta)
    assert t_uniform.bound >= 1 - n / N_POINTS, t_uniform


def test_lemma52c_complexity_term_is_necessary_all_functions_class():
    # G = all {0,1}-valued functions on A (q = 1): R_hat_S(G) = 1/2 on distinct samples (enumerated at n = 6),
    # sup_g (E g - E_hat g) = 1 - n/N, and the bound is 1 + confidence: 2 R_hat is exactly the deviation
    n, delta = 400, 0.05
    g_small = np.array(list(itertools.product((0.0, 1.0), repeat=6)))
    _close(rademacher.rademacher_finite(g_small).value, 0.5, "R_hat of all functions on 6 distinct points")
    res = bounds.uniform_deviation_bound(0.0, 0.5, n, delta)
    risk = 1 - n / N_POINTS
    assert res.bound >= risk and _collision_prob(n) <= delta, (
        f"Lemma 5.2(c): bound {res.bound:.4f} < sup deviation {risk:.6f} (complexity {res.complexity}, "
        f"confidence {res.confidence:.4f})")
    assert 0.5 + res.confidence < risk            # the case has power: 1 x R_hat instead of 2 x would fail


def lemma52c_confidence_slack(n: int = 400, delta: float = 0.05) -> float:
    """The smallest multiple lambda of the confidence term for which Lemma 5.2(c) still holds, w.p. >= 1 - delta,
    on the mixture class (all functions on a set of mass q, the rest fixed), maximised over q: there
    sup deviation - 2 R_hat_S = q - Bin(n, q)/n exactly (on distinct samples)."""
    conf = bounds.uniform_deviation_bound(0.0, 0.0, n, delta).confidence
    ks = np.arange(n + 1)
    worst = 0.0
    for q in np.linspace(0.05, 0.95, 91):
        # lambda(q) = smallest lambda with P(q - k/n > lambda conf) <= delta: the (1 - delta) quantile of q - k/n
        dev = q - ks / n
        cdf_from_top = np.cumsum(binom.pmf(ks, n, q))           # P(k <= j) = P(dev >= q - j/n)
        j = int(np.searchsorted(cdf_from_top, delta, side="right"))   # P(k < j) <= delta < P(k <= j)
        worst = max(worst, dev[j] / conf if j <= n else 0.0)
    return worst


def test_lemma52c_confidence_term_suffices_and_its_slack():
    # validity on the exact mixture case; the factor found (~0.2) is why no honest test can show the 3 necessary
    lam = lemma52c_confidence_slack()
    assert lam <= 1.0, f"Lemma 5.2(c) fails on the mixture class: needs {lam:.3f} x the confidence term"
    assert lam > 0.1


# ----------------------------------------------------------------------------------------------------------
# the Monte Carlo certificate on the widest per-draw law
# ----------------------------------------------------------------------------------------------------------

MC_PSI = np.ones((2, 1))                 # two equal features: per-draw sup (B K/2)|sigma_1 + sigma_2| in {0, B K}
MC_CASES = (("frobenius", 1, 1.0), ("row", 3, 0.5))


def _exact_mc_value(norm: str, k: int, radius: float) -> float:
    exact = rademacher.rademacher_linear(MC_PSI, radius, num_outputs=k, norm=norm, method="exact").value
    _close(exact, radius * k / 2, f"exact ERC of two equal features ({norm}, K={k})")
    # the per-draw law: 4 sign patterns (one column per output for the Frobenius class, one shared for row)
    cols = k if norm == "frobenius" else 1
    sig = all_signs(2 * cols).reshape(-1, 2, cols)
    if norm == "row":
        sig = np.repeat(sig, k, axis=2)
    per_draw = rademacher.linear_sup_closed(MC_PSI, sig, radius, norm=norm)
    assert sorted(set(np.round(per_draw / (radius * k), 12))) == [0.0, 1.0] and np.mean(per_draw > 0) == 0.5
    return exact


def test_mc_certificate_exact_coverage_on_the_widest_per_draw_law():
    # m = 1000 draws, delta_mc = 1e-3: the estimate is B K Bin(m, 1/2)/m, so P(certificate < exact) is a binomial
    # tail. Correct deviation: ~6e-8; deviation / 2: 4.3e-3 = 4.3 delta_mc. The deviation is the one the
    # estimator itself adds (upper - value of rademacher_linear's MC result).
    m, delta_mc = 1000, 1e-3
    for norm, k, radius in MC_CASES:
        exact = _exact_mc_value(norm, k, radius)
        res = rademacher.rademacher_linear(MC_PSI, radius, num_outputs=k, norm=norm, method="mc", n_draws=m, seed=0,
                                           delta_mc=delta_mc)
        closed = rademacher.closed_form_bounds(MC_PSI, radius, k, norm)[1]
        assert res.upper < closed - 1e-9, "the certificate branch must be the active one for this check"
        dev = res.upper - res.value
        _close(dev, rademacher.mc_deviation(MC_PSI, radius, num_outputs=k, norm=norm, n_draws=m, delta_mc=delta_mc),
               "deviation added by rademacher_linear vs mc_deviation", rel=1e-9)
        ks = np.arange(m + 1)
        miss = radius * k * ks / m + dev < exact * (1 - REL)
        p_miss = float(binom.pmf(ks[miss], m, 0.5).sum())
        assert p_miss <= delta_mc, (f"MC certificate ({norm}, K={k}) fails to cover the exact ERC w.p. "
                                    f"{p_miss:.3g} > delta_mc = {delta_mc} ({p_miss / delta_mc:.2f} x)")


def test_mc_certificate_coverage_in_seeded_repetitions_of_the_library_stream():
    # T = 20000 repetitions of m = 20 draws (consecutive blocks of one seeded stream of the library's signs),
    # delta_mc = 1e-3. Correct: no miss is possible (P = 0). Deviation / 2: P(miss) = 5.9e-3, ~118 misses
    # expected against an allowance of binom.ppf(0.999, T, delta_mc) = 35.
    m, t_reps, delta_mc, seed = 20, 20_000, 1e-3, 7
    allowed = int(binom.ppf(0.999, t_reps, delta_mc))
    signs = np.concatenate([s.numpy() for s in rademacher.rademacher_signs(2, m * t_reps, seed=seed,
                                                                          dtype=torch.float64)])
    z = np.abs(signs[:, 0, :].sum(axis=1)) / 2                       # (B K/n)|sigma_1 + sigma_2| / (B K)
    for norm, k, radius in MC_CASES:
        exact = _exact_mc_value(norm, k, radius)
        per_draw = radius * k * z
        if norm == "row":                                           # the library's per-draw sup on the same signs
            head = rademacher.linear_sup_closed(MC_PSI, np.repeat(signs[:50].transpose(0, 2, 1), k, axis=2), radius,
                                                norm="row")
            np.testing.assert_allclose(head, per_draw[:50], rtol=1e-12)
        means = per_draw.reshape(t_reps, m).mean(axis=1)
        first = rademacher.rademacher_linear(MC_PSI, radius, num_outputs=k, norm=norm, method="mc", n_draws=m,
                                             seed=seed, delta_mc=delta_mc)
        _close(first.value, float(means[0]), "block 0 = the estimator's own draws", rel=1e-9)
        dev = rademacher.mc_deviation(MC_PSI, radius, num_outputs=k, norm=norm, n_draws=m, delta_mc=delta_mc)
        _close(rademacher.mc_certificate(float(means[0]), MC_PSI, radius, num_outputs=k, norm=norm, n_draws=m,
                                         delta_mc=delta_mc), float(means[0]) + dev, "mc_certificate")
        misses = int(np.sum(means + dev < exact * (1 - REL)))
        assert misses <= allowed, (f"MC certificate ({norm}, K={k}) missed the exact ERC in {misses} of {t_reps} "
                                   f"repetitions (allowed {allowed} at delta_mc = {delta_mc})")


# ----------------------------------------------------------------------------------------------------------
# the union over K classes of Corollary 5.4
# ----------------------------------------------------------------------------------------------------------

def corollary54_union_failure_probability(num_classes: int = 10**7, n_c: int = 500, p: float = 0.54,
                                          delta: float = 0.5) -> float:
    """Exact P(some class's Corollary 5.4 bound fails) for one fixed scorer (R_hat^v = 0 exactly) whose margins
    are +-rho, so that its margin loss is its 0-1 loss: given the labels, the K classes' error counts are
    independent Bin(n_c, p)."""
    ks = np.arange(n_c + 1)
    fails = np.array([p > bounds.corollary54_class_bound(k / n_c, 0.0, 0.0, n_c, 1.0, delta, num_classes).bound
                      for k in ks])
    p_class = float(binom.pmf(ks[fails], n_c, p).sum())
    return -math.expm1(num_classes * math.log1p(-p_class)) if p_class < 1 else 1.0


def test_corollary54_union_over_classes_is_needed_at_large_k():
    delta = 0.5
    p_any = corollary54_union_failure_probability(delta=delta)
    assert p_any <= delta, (f"Corollary 5.4 over K = 1e7 classes fails for some class w.p. {p_any:.4g} > delta "
                            f"= {delta}")


# ----------------------------------------------------------------------------------------------------------
# constants re-derived from the proofs' steps
# ----------------------------------------------------------------------------------------------------------

MAURER = math.sqrt(2.0)   # Maurer (2016), Cor. 1: the vector contraction constant (cited, not derivable here)


@functools.cache
def derived_margin_lipschitz(k: int = 3) -> float:
    """sup |M(v, y) - M(v', y)| / ||v - v'||_2, from the attaining pair of lemma_5_2b (v' = v + t(e_y - e_c))
    and random pairs (which must not exceed it)."""
    v = np.full(k, -1.0)
    v[0] = v[1] = 0.0
    t = 0.3
    w = v.copy()
    w[0] += t
    w[1] -= t
    attained = abs(margin(w, 0) - margin(v, 0)) / np.linalg.norm(w - v)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5000, k))
    ratios = [abs(margin(x, 0) - margin(z, 0)) / np.linalg.norm(x - z) for x, z in zip(a, b, strict=True)]
    assert max(ratios) <= attained * (1 + 1e-9)
    return attained


def derived_ramp_slope(rho: float) -> float:
    """The ramp's Lipschitz constant: its slope on (0, rho)."""
    a, b = 0.2 * rho, 0.7 * rho
    return abs(ramp(b, rho) - ramp(a, rho)) / (b - a)


def derived_contraction_factor(rho: float) -> float:
    return MAURER * derived_margin_lipschitz() * derived_ramp_slope(rho)


def test_lemma52b_constants_from_the_proof_steps():
    for rho in (0.25, 0.7, 2.0):
        _close(bounds.margin_lipschitz(rho), derived_margin_lipschitz() * derived_ramp_slope(rho),
               f"margin_lipschitz({rho})")
        _close(bounds.vector_contraction(1.7, 0.3), MAURER * 1.7 * 0.3, "vector_contraction(1.7, 0.3)")
        _close(bounds.contraction_factor(rho), derived_contraction_factor(rho), f"contraction_factor({rho})")


def derived_confidence(n: int, delta: float, applications: int = 1) -> float:
    """Lemma 5.2(c)'s confidence term from its proof, for one of ``applications`` union-bounded applications:
    each runs at delta' = delta / applications; Step 1: McDiarmid on sup_g (E g - E_hat g), differences 1/n, at
    delta'/2; Step 3: McDiarmid on R_hat_S, differences 1/n, at delta'/2, doubled by Step 2's 2 R_n."""
    d = delta / applications
    return mcdiarmid(1.0 / n, d / 2, count=n) + 2.0 * mcdiarmid(1.0 / n, d / 2, count=n)


def test_lemma52c_confidence_term_from_mcdiarmid():
    for n, delta in ((1, 0.3), (50, 0.1), (4000, 0.05), (123, 1e-6)):
        _close(bounds.confidence_term(n, delta), derived_confidence(n, delta), f"confidence_term({n}, {delta})")
        res = bounds.uniform_deviation_bound(0.2, 0.07, n, delta)
        _close(res.complexity, 2.0 * 0.07, "Lemma 5.2(c) complexity 2 R_hat")          # Step 2
        _close(res.confidence, derived_confidence(n, delta), "Lemma 5.2(c) confidence")
        _close(res.bound, 0.2 + 0.14 + derived_confidence(n, delta), "Lemma 5.2(c) bound")


def test_grid_and_class_unions_from_the_proof():
    # Theorem 5.3 (G): m grid points, each at delta/m; Corollary 5.4: K classes x m points, each at delta/(K m)
    for n, delta, m, k in ((200, 0.05, 6, 10), (12, 0.1, 3, 5), (1000, 0.01, 1, 200)):
        _close(bounds.confidence_term(n, delta, grid_size=m, num_classes=k), derived_confidence(n, delta, k * m),
               f"confidence_term(n={n}, m={m}, K={k})")
        _close(bounds.theorem53_bound(0.1, 0.01, 0.02, n, 0.5, delta, grid_size=m).confidence,
               derived_confidence(n, delta, m), "Theorem 5.3 confidence with a grid")
        _close(bounds.corollary54_class_bound(0.1, 0.01, 0.02, n, 0.5, delta, k, grid_size=m).confidence,
               derived_confidence(n, delta, k * m), f"Corollary 5.4 confidence (K={k}, m={m})")
    # the same through the corollary54 statement (K = 4 classes, counts 4, 3, 0, 1; grid of 2 rho values)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 3])
    res = _corollary54(np.linspace(-0.5, 1.5, 8), labels, [0.1, 0.1, None, 0.1], [0.05, 0.05, None, 0.05], 4, 0.1,
                       BoundGrid(rhos=(0.5, 1.0)), 2.0, 1.0)
    for c, t in res.items():
        _close(t["confidence"], derived_confidence(t["n"], 0.1, 4 * 2), f"corollary54 confidence of class {c}")


def test_weighted_confidence_from_mcdiarmid_with_differences_w():
    # bounded differences w_i for both McDiarmid steps; T targets x m grid points
    w = np.concatenate([np.full(40, 1 / (3 * 40)), np.full(12, 1 / (3 * 12)), np.full(3, 1 / (3 * 3))])
    for delta, m, t in ((0.05, 1, 1), (0.05, 5, 4), (0.2, 3, 2)):
        d = delta / (t * m)
        derived = mcdiarmid(w, d / 2) + 2.0 * mcdiarmid(w, d / 2)
        _close(bounds.weighted_confidence_term(float(np.sum(w ** 2)), delta, m, t), derived,
               f"weighted_confidence_term(T={t}, m={m})")
        _close(bounds.weighted_margin_bound(0.1, 0.01, 0.02, float(np.sum(w ** 2)), 0.5, delta, m, t).confidence,
               derived, "weighted_margin_bound confidence")


def test_margin_bound_complexity_from_the_proof_steps():
    # 2 (Lemma 5.2(c)) x contraction (Lemma 5.2(b)) x (r_1 + r_2) (Lemma 5.1), every entry point
    for rho, r1, r2 in ((0.5, 0.01, 0.02), (2.0, 0.3, 0.0), (0.1, 0.004, 0.001)):
        derived = 2.0 * derived_contraction_factor(rho) * (r1 + r2)
        _close(bounds.theorem53_bound(0.1, r1, r2, 100, rho, 0.05).complexity, derived, "Theorem 5.3 complexity")
        _close(bounds.corollary54_class_bound(0.1, r1, r2, 10, rho, 0.05, 3).complexity, derived,
               "Corollary 5.4 complexity")
        _close(bounds.weighted_margin_bound(0.1, r1, r2, 0.01, rho, 0.05).complexity, derived,
               "weighted margin bound complexity")
        g = bounds.theorem53_grid_bound(np.linspace(-1, 1, 20), r1, r2, 0.05, BoundGrid(rhos=(rho,)), 1.0, 1.0)
        _close(g.best.complexity, derived, "theorem53_grid_bound complexity")


def test_bounded_features_form_from_the_proof_steps():
    # Mohri et al. Thm 3.3 (3.3): one McDiarmid (differences 1/n) at delta/(K m) with the expected complexity;
    # R_n(W_row(B)) <= B K r/sqrt(n) (Frobenius B sqrt(K) r/sqrt(n)), the closed form of Lemma 5.2(a) at
    # sum ||psi_i||^2 = n r^2
    n, rho, delta, m, k_out, r = 400, 0.5, 0.05, 4, 3, 1.0
    for norm, k_union in (("row", 1), ("frobenius", 3)):
        t = bounds.theorem53_bound_bounded_features(0.1, n, rho, delta, radius_penult=2.0, radius_final=1.0,
                                                    num_outputs=k_out, feature_norm_bound=r, norm=norm,
                                                    grid_size=m, num_classes=k_union)
        unit = rademacher.closed_form_bounds(np.full((n, 1), r), 1.0, k_out, norm)[1]   # = c_K r / sqrt(n)
        _close(t.complexity, 2.0 * derived_contraction_factor(rho) * (2.0 + 1.0) * unit,
               f"bounded-features complexity ({norm})")
        _close(t.confidence, mcdiarmid(1.0 / n, delta / (k_union * m), count=n),
               f"bounded-features confidence (K={k_union}, m={m})")


def derived_mc_deviation(psi: np.ndarray, radius: float, k: int, norm: str, m: int, delta: float) -> float:
    """McDiarmid for the mean of m draws, with bounded differences found by flipping each sign of every sign
    pattern of one draw (the true per-sign differences, <= the proof's 2 B ||psi_i|| / n or 2 B K ||psi_i|| / n)."""
    n = psi.shape[0]
    cols = k if norm == "frobenius" else 1

    def z(s: np.ndarray) -> np.ndarray:            # per-draw sup, s (patterns, n, cols)
        v = np.einsum("pnc,nd->pcd", s, psi)
        if norm == "frobenius":
            return radius / n * np.linalg.norm(v.reshape(v.shape[0], -1), axis=1)
        return radius * k / n * np.linalg.norm(v[:, 0], axis=1)

    sig = all_signs(n * cols).reshape(-1, n, cols)
    base = z(sig)
    diffs = []
    for i in range(n):
        for c in range(cols):
            flipped = sig.copy()
            flipped[:, i, c] *= -1
            diffs.append(float(np.max(np.abs(z(flipped) - base))))
    # m draws: every sign of every draw is a coordinate whose flip moves the mean by diff / m
    return mcdiarmid(np.array(diffs) / m, delta, count=1) * math.sqrt(m)


def test_mc_deviation_from_bounded_differences():
    m, delta = 300, 0.02
    rng = np.random.default_rng(5)
    generic = rng.normal(size=(4, 3))
    # +-v, one norm: a sign pattern with the other columns' sums 0 and no sign change exists, so every
    # sign-flip difference of the proof (2B||psi_i||/n, x K for the row class) is attained
    parallel = np.outer(rng.choice([-1.0, 1.0], size=4), rng.normal(size=3))
    for norm, k in (("frobenius", 1), ("frobenius", 2), ("row", 3)):
        for name, psi in (("generic", generic), ("parallel", parallel)):
            lib = rademacher.mc_deviation(psi, 1.5, num_outputs=k, norm=norm, n_draws=m, delta_mc=delta)
            derived = derived_mc_deviation(psi, 1.5, k, norm, m, delta)
            assert lib >= derived * (1 - 1e-9), (f"mc_deviation ({norm}, K={k}, {name}) = {lib:.6g} is below the "
                                                 f"McDiarmid term {derived:.6g} of the true sign-flip differences "
                                                 f"(ratio {lib / derived:.4f})")
            if name == "parallel":            # there the proof's differences 2B||psi_i||/n (x K for row) are exact
                _close(lib, derived, f"mc_deviation ({norm}, K={k}) on parallel features", rel=1e-9)
