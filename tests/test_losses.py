"""Margins, ramp loss, 0-1 error and the logit-adjusted cross-entropy (THEORY §0, §1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scilt_theory.losses import (
    COUNT_FLOOR,
    empirical_margin_loss,
    logit_adjusted_cross_entropy,
    margins,
    ramp_loss,
    zero_one_error,
)


def naive_margins(scores, labels):
    out = []
    for row, y in zip(scores, labels, strict=True):
        out.append(row[y] - max(row[c] for c in range(len(row)) if c != y))
    return np.array(out, dtype=np.float64)


score_arrays = st.integers(2, 5).flatmap(
    lambda k: st.tuples(
        arrays(np.float64, st.tuples(st.integers(1, 8), st.just(k)),
               elements=st.integers(-3, 3).map(float)),  # small integers: ties happen often
        st.just(k)))


@given(score_arrays, st.data())
def test_margins_match_naive_loop(sk, data):
    scores, k = sk
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=len(scores), max_size=len(scores))))
    np.testing.assert_array_equal(margins(scores, labels), naive_margins(scores, labels))
    torch_m = margins(torch.tensor(scores), torch.tensor(labels))
    assert isinstance(torch_m, torch.Tensor)
    np.testing.assert_array_equal(torch_m.numpy(), naive_margins(scores, labels))
    # 0-1 error with ties as errors equals the fraction of margins <= 0
    assert zero_one_error(scores, labels) == pytest.approx(np.mean(naive_margins(scores, labels) <= 0))


def test_margins_ties_count_as_errors():
    scores = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [0.0, 3.0, 3.0]])
    labels = np.array([0, 0, 2])
    np.testing.assert_array_equal(margins(scores, labels), [0.0, 1.0, 0.0])
    assert zero_one_error(scores, labels) == pytest.approx(2 / 3)
    # argmax would call the first row correct (it picks index 0 in the tie); the convention calls it an error
    assert ramp_loss(0.0, 0.5) == 1.0
    assert empirical_margin_loss(scores, labels, rho=1.0) == pytest.approx((1.0 + 0.0 + 1.0) / 3)


def test_ramp_breakpoints_and_values():
    rho = 0.5
    t = np.array([-1.0, 0.0, 0.125, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(ramp_loss(t, rho), [1.0, 1.0, 0.75, 0.5, 0.0, 0.0])
    assert ramp_loss(torch.tensor([0.25]), rho).item() == pytest.approx(0.5)


@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0.01, 10))
def test_ramp_lipschitz_and_dominates_zero_one(a, b, rho):
    # |Phi(a) - Phi(b)| <= |a - b| / rho, and 1{t <= 0} <= Phi(t) <= 1
    assert abs(ramp_loss(a, rho) - ramp_loss(b, rho)) <= abs(a - b) / rho + 1e-12
    assert float(a <= 0) <= ramp_loss(a, rho) <= 1.0


def test_ramp_lipschitz_constant_is_attained():
    rho = 0.3
    assert (ramp_loss(0.1, rho) - ramp_loss(0.2, rho)) / 0.1 == pytest.approx(1 / rho)


def test_empirical_margin_loss_is_mean_ramp():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 4))
    labels = rng.integers(0, 4, size=50)
    rho = 0.7
    expected = np.mean([min(1.0, max(0.0, 1 - m / rho)) for m in naive_margins(scores, labels)])
    assert empirical_margin_loss(scores, labels, rho) == pytest.approx(expected)
    assert empirical_margin_loss(torch.tensor(scores), torch.tensor(labels), rho) == pytest.approx(expected)


def test_la_ce_equals_cross_entropy_on_shifted_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 5, (16,), generator=g)
    counts = torch.tensor([100.0, 40.0, 10.0, 5.0, 1.0])
    tau = 1.3
    expected = F.cross_entropy(logits + tau * torch.log(counts / counts.sum()), targets)
    got = logit_adjusted_cross_entropy(logits, targets, counts, tau=tau)
    assert torch.allclose(got, expected)
    got_none = logit_adjusted_cross_entropy(logits, targets, counts.tolist(), tau=tau, reduction="none")
    assert got_none.shape == (16,)
    assert torch.allclose(got_none.sum(), logit_adjusted_cross_entropy(logits, targets, counts, tau, "sum"))


def test_la_ce_is_plain_ce_for_tau_zero_or_uniform_counts():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 3, generator=g)
    targets = torch.randint(0, 3, (8,), generator=g)
    plain = F.cross_entropy(logits, targets)
    assert torch.allclose(logit_adjusted_cross_entropy(logits, targets, [5, 1, 0], tau=0.0), plain)
    assert torch.allclose(logit_adjusted_cross_entropy(logits, targets, np.array([7, 7, 7])), plain, atol=1e-6)


def test_la_ce_zero_count_uses_floor_and_stays_finite():
    logits = torch.zeros(2, 3)
    targets = torch.tensor([0, 2])
    loss = logit_adjusted_cross_entropy(logits, targets, [10, 10, 0], reduction="none")
    assert torch.isfinite(loss).all()
    prior = torch.tensor([10.0, 10.0, COUNT_FLOOR]) / (20 + COUNT_FLOOR)
    assert torch.allclose(loss, F.cross_entropy(torch.log(prior).expand(2, 3).float(), targets, reduction="none"))


def test_la_ce_gradient_flows():
    logits = torch.randn(6, 4, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    logit_adjusted_cross_entropy(logits, targets, [3, 2, 1, 1]).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    scores = torch.randn(5, 3, requires_grad=True)
    margins(scores, torch.tensor([0, 1, 2, 0, 1])).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


@pytest.mark.parametrize("call, match", [
    (lambda: margins(np.zeros((3, 1)), [0, 0, 0]), "K >= 2"),
    (lambda: margins(np.zeros(3), [0, 0, 0]), "2-D"),
    (lambda: margins(np.zeros((3, 2)), [0, 0]), "one entry per row"),
    (lambda: margins(np.zeros((2, 2)), [0, 2]), r"\[0, 1\]"),
    (lambda: margins(np.zeros((2, 2)), [0, -1]), r"\[0, 1\]"),
    (lambda: margins(np.zeros((2, 2)), [0.0, 1.0]), "integers"),
    (lambda: margins(np.array([[0.0, np.nan]]), [0]), "NaN"),
    (lambda: margins(torch.tensor([[0.0, float("inf")]]), [0]), "NaN"),
    (lambda: ramp_loss(0.1, 0.0), "rho"),
    (lambda: ramp_loss(0.1, -1.0), "rho"),
    (lambda: ramp_loss(np.array([np.nan]), 1.0), "NaN"),
    (lambda: empirical_margin_loss(np.zeros((0, 2)), np.zeros(0, dtype=int), 1.0), "empty"),
    (lambda: zero_one_error(np.zeros((0, 2)), np.zeros(0, dtype=int)), "empty"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [1, 1]), "one entry per class"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3]), [1, 1, 1]), "targets"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0]), [1, 1, 1]), "targets"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [1, -1, 1]), "non-negative"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [0, 0, 0]), "all be zero"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [1, 1, 1], tau=-1), "tau"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [1, 1, 1], reduction="x"),
     "reduction"),
    (lambda: logit_adjusted_cross_entropy(torch.zeros(3), torch.tensor([0, 1, 2]), [1, 1, 1]), "shape"),
])
def test_validation_losses(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ramp_float_in_float_out():
    assert isinstance(ramp_loss(0.5, 1.0), float)
    assert math.isclose(ramp_loss(0.5, 1.0), 0.5)
