"""Validity with class counts fixed by design (THEORY §4 "What it bounds", §8; proofs/weighted_margin_bound.md).

The distribution of tests/test_bound_validity.py, but the labels are fixed before the draw (n_c = the long-tail
profile below) and each x_i is drawn from D_{y_i}: the setting of a long-tail profile or a stratified hold-out. In
repeated trials, uniformly over the fitted scorer and a fixed family of scorers of the class:

* Theorem 5.3 read conditionally bounds the prior-weighted error Σ_c (n_c/n)·err_c (not P_D(error));
* the class-weighted statement bounds the balanced error (1/K)·Σ_c err_c and each group's balanced error.

Power: the same trials reject mutants (complexity term dropped, confidence divided by 10).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom
from test_bound_validity import (
    B1,
    B2,
    DELTA,
    GRID,
    MU,
    NOISE,
    PRIOR,
    ROT,
    K,
    exact_risks,
    family_margins,
    fixed_family,
    unit_rows,
)

from scilt_theory.bounds import weighted_margin_bound
from scilt_theory.losses import margins, ramp_loss
from scilt_theory.statements import fused_model_bounds

COUNTS = np.array([1500, 600, 150])  # fixed by design, not drawn
N, T = int(COUNTS.sum()), 100
GROUPS = ("head", "tail", "tail")
CLASSWISE = ("theorem53_classwise", "weighted_margin_classwise", "theorem53_classwise_bounded_data_radii",
             "weighted_margin_classwise_bounded_data_radii")
THRESHOLD = int(binom.ppf(0.999, T, DELTA))
P_Z_GIVEN_Y = (PRIOR[:, None] * NOISE) / (PRIOR[:, None] * NOISE).sum(axis=0, keepdims=True)  # [z, y]


def draw_fixed_counts(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x_i ~ D_{y_i} for the fixed labels y (D_c = the x-distribution given the observed label c)."""
    y = np.repeat(np.arange(K), COUNTS)
    z = np.array([rng.choice(K, p=P_Z_GIVEN_Y[:, c]) for c in y])
    x = MU[z] + rng.normal(size=(N, MU.shape[1]))
    psi1 = x / np.linalg.norm(x, axis=1, keepdims=True)
    return psi1, psi1 @ ROT.T, y


def target_weights(y: np.ndarray) -> dict[str, np.ndarray]:
    """The statement's targets and weights: balanced over all classes, and each group (statements/context.py)."""
    out = {"balanced": 1.0 / (K * COUNTS[y])}
    for g in sorted(set(GROUPS)):
        members = [c for c in range(K) if GROUPS[c] == g]
        out[f"group:{g}"] = np.where(np.isin(y, members), 1.0 / (len(members) * COUNTS[y]), 0.0)
    return out


def target_risk(target: str, risk_c: np.ndarray) -> np.ndarray:
    """The true value of a target's quantity, from per-class risks (..., K)."""
    if target == "prior-weighted":
        return risk_c @ (COUNTS / N)
    members = list(range(K)) if target == "balanced" else [c for c in range(K) if GROUPS[c] == target[6:]]
    return risk_c[..., members].mean(axis=-1)


def run_trials() -> dict:
    fam_u, fam_v = fixed_family()
    fam_risk_c = np.array([exact_risks(uu + vv @ ROT)[1] for uu, vv in zip(fam_u, fam_v, strict=True)])  # (M, K)
    rng = np.random.default_rng(7)
    targets = ["prior-weighted", "balanced", "group:head", "group:tail"]
    fails = {t: 0 for t in targets}
    mutant = {t: 0 for t in targets}
    bounded_fails = 0
    classwise_fails = 0
    for _ in range(T):
        psi1, psi2, y = draw_fixed_counts(rng)
        u = B1 * unit_rows(np.stack([psi1[y == c].mean(0) for c in range(K)]))
        v = B2 * unit_rows(np.stack([psi2[y == c].mean(0) for c in range(K)]))
        risk_c = exact_risks(u + v @ ROT)[1]
        scores = psi1 @ u.T + psi2 @ v.T
        rep = fused_model_bounds(psi1, psi2, scores, y, num_classes=K, radius_penult=B1, radius_final=B2,
                                 grid=GRID, delta=DELTA, n_draws=0, class_groups=list(GROUPS),
                                 feature_norm_bound=1.0, head_weights=(u, v),
                                 statements=["theorem53", "weighted_margin", "weighted_margin_bounded_features",
                                             *CLASSWISE])
        failed = {"prior-weighted": rep.record("theorem53").bound < target_risk("prior-weighted", risk_c)}
        failed.update({t: rep.record("weighted_margin", t).bound < target_risk(t, risk_c) for t in targets[1:]})
        bounded_fails += int(any(rep.record("weighted_margin_bounded_features", t).bound < target_risk(t, risk_c)
                                 for t in targets[1:]))
        # the class-wise contraction forms (THEORY §8), each for its own quantity
        classwise_fails += int(any(
            rep.record(name, "overall" if t == "prior-weighted" else t).bound < target_risk(t, risk_c)
            for name in CLASSWISE for t in (["prior-weighted"] if name.startswith("theorem53") else targets[1:])))
        # the fixed family, same sample: its terms from the library's formula with closed-form complexities
        # (unit features: R^w <= K sqrt(sum w_i^2) at unit radius, Lemma 5.2(a))
        marg = np.concatenate([margins(scores, y)[:, None], family_margins(psi1, psi2, y, fam_u, fam_v)], axis=1)
        risks_c = np.concatenate([risk_c[None], fam_risk_c])                      # (M + 1, K)
        weights = {"prior-weighted": np.full(N, 1.0 / N), **target_weights(y)}
        n_targets = {"prior-weighted": 1, **{t: 3 for t in targets[1:]}}          # the statement's union over T
        for t in targets:
            w = weights[t]
            s2 = float(np.sum(w ** 2))
            rc = K * math.sqrt(s2)
            best = np.full(marg.shape[1], np.inf)
            best_mut = np.full(marg.shape[1], np.inf)
            for rho in GRID.rhos:
                emp = np.clip((w[:, None] * ramp_loss(marg, rho)).sum(0), 0.0, 1.0)
                terms = weighted_margin_bound(0.0, B1 * rc, B2 * rc, s2, rho, DELTA, GRID.size, n_targets[t])
                best = np.minimum(best, emp + terms.complexity + terms.confidence)
                best_mut = np.minimum(best_mut, emp + terms.confidence / 10)
            truth = target_risk(t, risks_c)
            failed[t] = failed[t] or bool(np.any(best < truth))
            mutant[t] += int(np.any(best_mut < truth))
        for t in targets:
            fails[t] += int(failed[t])
    return {"fails": fails, "mutant": mutant, "bounded_fails": bounded_fails, "classwise_fails": classwise_fails}


@pytest.fixture(scope="module")
def trials() -> dict:
    return run_trials()


@pytest.mark.parametrize("target", ["prior-weighted", "balanced", "group:head", "group:tail"])
def test_statement_holds_for_its_own_quantity_with_fixed_class_counts(trials, target):
    assert trials["fails"][target] <= THRESHOLD, trials


@pytest.mark.parametrize("target", ["prior-weighted", "balanced", "group:head", "group:tail"])
def test_the_check_rejects_a_broken_bound_on_the_same_trials(trials, target):
    failures = trials["mutant"][target]
    assert failures > THRESHOLD and binom.sf(failures - 1, T, DELTA) < 1e-6, trials


def test_the_bounded_features_form_holds_for_the_fitted_scorer(trials):
    assert trials["bounded_fails"] <= THRESHOLD, trials


def test_the_classwise_forms_hold_for_the_fitted_scorer(trials):
    assert trials["classwise_fails"] <= THRESHOLD, trials
