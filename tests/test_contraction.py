"""Lemma 5.2(b), Maurer's vector contraction (THEORY §3b), on random finite classes, both sides exact.

If every l_i : R^K -> R is L-Lipschitz w.r.t. ||.||_2, then R_hat(l o F) <= sqrt(2) L R_hat^v(F), where
R_hat(l o F) = E_sigma max_f (1/n) sum_i sigma_i l_i(f(x_i)) and R_hat^v as in THEORY §0. The ramp of the
margin, Phi_rho o M, is (sqrt 2 / rho)-Lipschitz, so R_hat(Phi_rho o M o F) <= (2/rho) R_hat^v(F).
The margin and ramp are written here (not imported) so that this test is an independent oracle.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scilt_theory.rademacher import rademacher_finite, rademacher_finite_vector


def margin(v: np.ndarray, y: int) -> float:
    """M(v, y) = v_y - max_{c != y} v_c (THEORY §0)."""
    return float(v[y] - np.delete(v, y).max())


def ramp(t: float, rho: float) -> float:
    """Phi_rho(t) = 1 for t <= 0, 1 - t/rho on (0, rho), 0 for t >= rho (THEORY §0)."""
    return 1.0 if t <= 0 else (1.0 - t / rho if t < rho else 0.0)


def random_lipschitz_losses(rng: np.random.Generator, n: int, k: int, lip: float):
    """One random L-Lipschitz (w.r.t. ||.||_2) loss per sample, of several kinds."""
    losses = []
    for _ in range(n):
        kind = rng.integers(4)
        c = rng.normal(size=k)
        if kind == 0:
            losses.append(lambda v, c=c: lip * float(np.linalg.norm(v - c)))
        elif kind == 1:
            u = rng.normal(size=k)
            u /= np.linalg.norm(u)
            losses.append(lambda v, u=u: lip * float(u @ v))
        elif kind == 2:                                    # |max_k x_k - max_k y_k| <= ||x - y||_inf
            losses.append(lambda v, c=c: lip * float(np.max(v - c)))
        else:
            j = rng.integers(k)
            losses.append(lambda v, j=j, c=c: lip * abs(float(v[j] - c[j])))
    return losses


def compose(values: np.ndarray, losses) -> np.ndarray:
    """(|A|, n, K) class values -> (|A|, n) values of l o f."""
    return np.array([[losses[i](a[i]) for i in range(a.shape[0])] for a in values])


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 5), k=st.integers(1, 3),
       lip=st.floats(0.1, 5.0))
def test_lemma52b_vector_contraction_random_lipschitz_losses(seed, size, n, k, lip):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(size, n, k)) * rng.uniform(0.1, 3.0)
    losses = random_lipschitz_losses(rng, n, k, lip)
    lhs = rademacher_finite(compose(values, losses)).value
    rhs = math.sqrt(2.0) * lip * rademacher_finite_vector(values).value
    assert lhs <= rhs + 1e-12


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 5), k=st.integers(2, 3),
       rho=st.floats(0.05, 3.0))
def test_lemma52b_ramp_of_margin(seed, size, n, k, rho):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(size, n, k))
    labels = rng.integers(k, size=n)
    losses = [lambda v, y=y: ramp(margin(v, y), rho) for y in labels]
    lhs = rademacher_finite(compose(values, losses)).value
    assert lhs <= 2.0 / rho * rademacher_finite_vector(values).value + 1e-12


@pytest.mark.parametrize("k", [2, 3, 5])
def test_lemma52b_ramp_of_margin_lipschitz_constant(k):
    # The constant sqrt(2)/rho used above: never exceeded, and attained along e_y - e_c.
    rng = np.random.default_rng(k)
    rho = 0.7
    worst = 0.0
    for _ in range(2000):
        y = int(rng.integers(k))
        v, w = rng.normal(size=k), rng.normal(size=k) * 0.1
        w = v + w
        ratio = abs(ramp(margin(v, y), rho) - ramp(margin(w, y), rho)) / np.linalg.norm(v - w)
        worst = max(worst, ratio)
    assert worst <= math.sqrt(2) / rho + 1e-9
    v = np.full(k, -1.0)
    v[0], v[1] = 0.3, 0.0                                 # margin 0.3 in (0, rho), runner-up class 1
    w = v.copy()
    w[0] += 0.05
    w[1] -= 0.05                                          # margin moves by 0.1, ||v - w|| = 0.05 sqrt 2
    ratio = abs(ramp(margin(v, 0), rho) - ramp(margin(w, 0), rho)) / np.linalg.norm(v - w)
    assert ratio == pytest.approx(math.sqrt(2) / rho)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 6), n=st.integers(1, 6), k=st.integers(1, 3),
       lip=st.floats(0.1, 4.0))
def test_lemma52b_equality_case_linear_loss_on_one_coordinate(seed, size, n, k, lip):
    # f_j(x_i) = t_ji e_1 and l(v) = L v_1: R(l o F) = L R^v(F) exactly, so the sqrt(2) is not vacuous slack
    # hiding an error in either side.
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(size, n))
    values = np.zeros((size, n, k))
    values[:, :, 0] = t
    lhs = rademacher_finite(lip * t).value
    rv = rademacher_finite_vector(values).value
    assert lhs == pytest.approx(lip * rv, rel=1e-12, abs=1e-14)
    assert lhs <= math.sqrt(2) * lip * rv + 1e-12
