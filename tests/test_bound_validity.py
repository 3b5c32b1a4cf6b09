"""Statistical validity of Theorem 5.3 and Corollary 5.4 (THEORY §4, §7), with a check of the test's power.

The distribution (fixed before any sample is drawn)
---------------------------------------------------
K = 3 latent classes z with priors (0.6, 0.3, 0.1), x | z ~ N(a e_z, I_3) in R^3, and label noise: the observed
label y equals z w.p. 1 - eta, else one of the other two classes uniformly. The two feature maps are unit
vectors, like the cosine heads' inputs: psi_1(x) = x / ||x||, psi_2(x) = A psi_1(x) with a fixed orthogonal A.

Why the true risk is exact: a scorer f = U psi_1 + V psi_2 = (U + V A) x / ||x|| has the same argmax as the
linear map W x with W = U + V A (dividing by ||x|| > 0 changes no comparison). Given z, the K - 1 differences
(w_j - w_c) . x are jointly Gaussian, so P(argmax = j | z) is a bivariate normal orthant probability (scipy),
and P_D(error) and P_{D_c}(error) = P(argmax != c | y = c) follow from the priors and the noise matrix.

What a trial checks
-------------------
Each of T trials draws S (n = 4000, seeded) and evaluates, on the same S, (i) the data-dependent scorer fitted
on S (normalised class means of each feature map, radii B_1 = 2, B_2 = 1 as for cosine heads with s = 1),
through the public entry point ``statements.fused_model_bounds``, and (ii) a family of M scorers from the same class
fixed before the trials. The bounds hold *uniformly* over the class, so a trial fails when ANY of these
scorers has bound < true risk. Over T trials the failure count must stay <= binom.ppf(0.999, T, delta).

Power: because the bounds are loose, the same check is run on a deliberately broken "mutant" bound
(complexity term dropped, confidence term divided by 10). The mutant must fail clearly more often than the
threshold on the very same trials -- otherwise the check could not catch a wrong implementation. The family
of scorers gives the check its power: label noise keeps the true risks away from 0, and the largest
"true minus training error" among several scorers is a few standard errors, more than the mutant's slack.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, multivariate_normal

from scilt_theory.bounds import (
    confidence_term,
    corollary54_class_bound,
    theorem53_bound,
    theorem53_bound_bounded_features,
)
from scilt_theory.grid import BoundGrid
from scilt_theory.losses import margins
from scilt_theory.statements import fused_model_bounds

K, D = 3, 3
PRIOR = np.array([0.6, 0.3, 0.1])
A_SIGNAL, ETA = 1.5, 0.1
N, T, DELTA = 4000, 100, 0.1
M_FAMILY, SPREAD = 96, 3.0
B1, B2 = 2.0, 1.0
GRID = BoundGrid.geometric(0.1, 3.0, 6)
MU = A_SIGNAL * np.eye(K, D)
NOISE = np.full((K, K), ETA / (K - 1)) + (1 - ETA - ETA / (K - 1)) * np.eye(K)   # NOISE[z, y] = P(y | z)
P_Y = PRIOR @ NOISE
ROT = np.linalg.qr(np.random.default_rng(123).normal(size=(D, D)))[0]


def unit_rows(w: np.ndarray) -> np.ndarray:
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


def exact_risks(w: np.ndarray) -> tuple[float, np.ndarray]:
    """P_D(argmax_c (W x)_c != y) and, per class c, P(argmax != c | y = c) -- exact up to scipy's CDF tolerance."""
    pred = np.zeros((K, K))                                   # pred[z, j] = P(argmax = j | z)
    for z in range(K):
        for j in range(K):
            diff = np.array([w[j] - w[c] for c in range(K) if c != j])
            # P(diff x > 0) = P(-diff x <= 0), -diff x ~ N(-diff mu_z, diff diff^T)
            pred[z, j] = multivariate_normal(mean=-(diff @ MU[z]), cov=diff @ diff.T).cdf(np.zeros(K - 1))
    per_class = np.array([np.sum(PRIOR * NOISE[:, c] * (1.0 - pred[:, c])) / P_Y[c] for c in range(K)])
    return float(per_class @ P_Y), per_class


def draw_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = rng.choice(K, size=n, p=PRIOR)
    x = MU[z] + rng.normal(size=(n, D))
    y = np.where(rng.random(n) < ETA, (z + rng.integers(1, K, size=n)) % K, z)
    psi1 = x / np.linalg.norm(x, axis=1, keepdims=True)
    return psi1, psi1 @ ROT.T, y


def fixed_family() -> tuple[np.ndarray, np.ndarray]:
    """M scorers (U, V) with row norms B_1 and B_2, drawn once from a seed (independent of every sample).

    They are deliberately diverse (rows around e_c plus large random directions): their decisions differ on
    much of the space, so their training errors fluctuate partly independently -- this is what gives the
    check its power, since the bounds must hold for all of them at once.
    """
    rng = np.random.default_rng(2024)
    u = B1 * unit_rows(np.eye(K, D)[None] + SPREAD * rng.normal(size=(M_FAMILY, K, D)))
    v = B2 * unit_rows((np.eye(K, D) @ ROT.T)[None] + SPREAD * rng.normal(size=(M_FAMILY, K, D)))
    return u, v


def family_margins(psi1: np.ndarray, psi2: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Margins (n, M) of the M scorers, vectorised (scilt_theory.losses.margins is checked in test_losses)."""
    n, m = psi1.shape[0], u.shape[0]
    # columns ordered (class, scorer) so that each class is one contiguous block
    scores = (psi1 @ u.transpose(1, 0, 2).reshape(K * m, D).T
              + psi2 @ v.transpose(1, 0, 2).reshape(K * m, D).T).reshape(n, K, m)
    rows = np.arange(n)
    true = scores[rows, y, :].copy()
    scores[rows, y, :] = -np.inf
    return true - np.maximum(np.maximum(scores[:, 0], scores[:, 1]), scores[:, 2])


def ramp_means(marg: np.ndarray) -> np.ndarray:
    """R_hat_{S,rho} for every grid rho: shape (len(GRID.rhos),) + marg.shape[1:]."""
    return np.stack([np.clip(1.0 - marg / rho, 0.0, 1.0).mean(axis=0) for rho in GRID.rhos])


def run_trials() -> dict:
    fam_u, fam_v = fixed_family()
    family_risks = [exact_risks(uu + vv @ ROT) for uu, vv in zip(fam_u, fam_v, strict=True)]
    fam_risk = np.array([r for r, _ in family_risks])                  # (M,)
    fam_risk_c = np.array([rc for _, rc in family_risks])              # (M, K)
    unit_closed = K / math.sqrt(N)     # row ERC upper at B = 1 for unit features (Lemma 5.2a), = closed form
    rng = np.random.default_rng(0)
    keys = ("thm", "thm_mutant", "cor", "cor_mutant", "thm_bf", "cor_bf")
    out: dict = {k: 0 for k in keys}
    fitted_bounds, fitted_risks = [], []
    for _ in range(T):
        psi1, psi2, y = draw_sample(rng, N)
        n_c = np.bincount(y, minlength=K)
        # (i) the data-dependent scorer: class means of each feature map, rows scaled to the radii,
        # through the public entry point with closed-form ERCs
        u = B1 * unit_rows(np.stack([psi1[y == c].mean(0) for c in range(K)]))
        v = B2 * unit_rows(np.stack([psi2[y == c].mean(0) for c in range(K)]))
        risk, risk_c = exact_risks(u + v @ ROT)
        scores = psi1 @ u.T + psi2 @ v.T
        rep = fused_model_bounds(psi1, psi2, scores, y, num_classes=K, radius_penult=B1, radius_final=B2,
                                 grid=GRID, delta=DELTA, n_draws=0, feature_norm_bound=1.0)
        fitted_bounds.append(rep.record("theorem53").bound)
        fitted_risks.append(risk)
        thm = rep.record("theorem53").bound < risk
        thm_bf = rep.record("theorem53_bounded_features").bound < risk
        cor = any(rep.record("corollary54", f"class:{c}").bound < risk_c[c] for c in range(K))
        cor_bf = any(rep.record("corollary54_bounded_features", f"class:{c}").bound < risk_c[c] for c in range(K))

        # (ii) the fixed family, same S; the data-free terms come from the library, per grid rho
        marg = np.concatenate([margins(scores, y)[:, None], family_margins(psi1, psi2, y, fam_u, fam_v)], axis=1)
        risks = np.concatenate([[risk], fam_risk])
        risks_c = np.concatenate([risk_c[None], fam_risk_c])
        emp = ramp_means(marg)                                           # (R, M + 1)
        extra = np.array([theorem53_bound(0.0, B1 * unit_closed, B2 * unit_closed, N, rho, DELTA,
                                          grid_size=GRID.size).bound for rho in GRID.rhos])
        extra_bf = np.array([theorem53_bound_bounded_features(
            0.0, N, rho, DELTA, radius_penult=B1, radius_final=B2, num_outputs=K, grid_size=GRID.size).bound
            for rho in GRID.rhos])
        thm |= bool(np.any((emp + extra[:, None]).min(0) < risks))
        thm_bf |= bool(np.any((emp + extra_bf[:, None]).min(0) < risks))
        # the mutant: no complexity term, confidence / 10, best rho of the same grid
        conf = confidence_term(N, DELTA, grid_size=GRID.size)
        mut = bool(np.any(emp.min(0) + conf / 10 < risks))
        cor_mut = False
        for c in range(K):
            nc = int(n_c[c])
            emp_c = ramp_means(marg[y == c])
            rc = K / math.sqrt(nc)
            extra_c = np.array([corollary54_class_bound(0.0, B1 * rc, B2 * rc, nc, rho, DELTA, K,
                                                        grid_size=GRID.size).bound for rho in GRID.rhos])
            extra_c_bf = np.array([theorem53_bound_bounded_features(
                0.0, nc, rho, DELTA, radius_penult=B1, radius_final=B2, num_outputs=K, grid_size=GRID.size,
                num_classes=K).bound for rho in GRID.rhos])
            cor |= bool(np.any((emp_c + extra_c[:, None]).min(0) < risks_c[:, c]))
            cor_bf |= bool(np.any((emp_c + extra_c_bf[:, None]).min(0) < risks_c[:, c]))
            conf_c = confidence_term(nc, DELTA, grid_size=GRID.size, num_classes=K)
            cor_mut |= bool(np.any(emp_c.min(0) + conf_c / 10 < risks_c[:, c]))
        for key, failed in zip(keys, (thm, mut, cor, cor_mut, thm_bf, cor_bf), strict=True):
            out[key] += int(failed)
    out.update(fitted_bounds=fitted_bounds, fitted_risks=fitted_risks, family_risks=fam_risk.tolist())
    return out


@pytest.fixture(scope="module")
def trials() -> dict:
    return run_trials()


THRESHOLD = int(binom.ppf(0.999, T, DELTA))


def test_theorem53_holds_uniformly_in_repeated_trials(trials):
    assert trials["thm"] <= THRESHOLD, trials


def test_corollary54_holds_for_every_class_in_repeated_trials(trials):
    assert trials["cor"] <= THRESHOLD, trials


def test_theorem53_bounded_features_form_holds_in_repeated_trials(trials):
    # the tighter proved form beside the contract (bounds.theorem53_bound_bounded_features)
    assert trials["thm_bf"] <= THRESHOLD, trials
    assert trials["cor_bf"] <= THRESHOLD, trials


def _clearly_rejected(failures: int) -> bool:
    # more failures than the check allows, and a count a valid bound would produce w.p. < 1e-6
    return failures > THRESHOLD and binom.sf(failures - 1, T, DELTA) < 1e-6


def test_theorem53_check_has_power_against_a_broken_bound(trials):
    # the same trials must reject a bound without complexity term and with confidence / 10
    assert _clearly_rejected(trials["thm_mutant"]), trials


def test_corollary54_check_has_power_against_a_broken_bound(trials):
    assert _clearly_rejected(trials["cor_mutant"]), trials


def test_theorem53_validity_setting_is_informative(trials):
    # the bound of the fitted scorer is non-vacuous and the true risks are far from 0 (label noise)
    assert max(trials["fitted_bounds"]) < 1.0, trials["fitted_bounds"][:5]
    assert min(trials["fitted_risks"]) > ETA and min(trials["family_risks"]) > ETA
