"""CAR, the Confusion-Aware Spectral Regulariser (THEORY §6, PEERS.md "CAR"; proofs/car_spectral_facts.md).

Exact oracles: a naive double loop over samples and classes for the soft confusion, numpy's SVD and norms for
the spectral numbers, a brute-force count loop for the hard confusion rates.
"""

from __future__ import annotations

import io
import math
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scilt_theory.car import (
    CARConfig,
    CARRegularizer,
    car_class_weights,
    confusion_rates,
    soft_confusion,
    spectral_figures,
    weighted_spectral_norm,
)

# ----------------------------------------------------------------------------------------------- oracles


def naive_soft_confusion(logits: np.ndarray, labels: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Double loop over samples and classes, in Python floats (the definition of PEERS.md)."""
    total = np.zeros((k, k))
    counts = np.zeros(k)
    for f, y in zip(logits.tolist(), labels.tolist(), strict=True):
        counts[y] += 1
        top = max(f)
        z = [math.exp((f[c] - top) / tau) for c in range(k)]
        for i in range(k):
            if i != y:
                gate = 1.0 / (1.0 + math.exp(-(f[i] - f[y])))
                total[i, y] += gate * z[i] / sum(z)
    for j in range(k):
        if counts[j]:
            total[:, j] /= counts[j]
    return total


def brute_force_confusion_rates(pred, labels, k: int) -> np.ndarray:
    out = np.zeros((k, k))
    for j in range(k):
        n_j = sum(1 for y in labels if y == j)
        for i in range(k):
            if i != j and n_j:
                out[i, j] = sum(1 for p, y in zip(pred, labels, strict=True) if y == j and p == i) / n_j
    return out


def numpy_weights(counts, r0=0.2, floor=1e-3) -> np.ndarray:
    m = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    w = 1.0 / np.sqrt(m + r0)
    return np.maximum(w / w.mean(), floor)


def top_singular(matrix: np.ndarray) -> float:
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


# -------------------------------------------------------------------------------------------- strategies


@st.composite
def batches(draw, min_n: int = 1, max_n: int = 16, max_k: int = 6):
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(min_n, max_n))
    logits = draw(arrays(np.float64, (n, k), elements=st.floats(-5, 5, allow_nan=False, allow_infinity=False)))
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return logits, labels, k


taus = st.sampled_from([0.5, 1.0, 2.5])


# ------------------------------------------------------------------------------------------ soft confusion


@settings(max_examples=40)
@given(batches(min_n=0), taus)
def test_soft_confusion_matches_naive_loop(batch, tau):
    logits, labels, k = batch
    got = soft_confusion(torch.tensor(logits), torch.tensor(labels), k, tau=tau)
    assert got.dtype == torch.float64 and got.shape == (k, k)
    np.testing.assert_allclose(got.numpy(), naive_soft_confusion(logits, labels, k, tau), rtol=1e-12, atol=1e-15)


@settings(max_examples=40)
@given(batches(), taus)
def test_soft_confusion_nonnegative_zero_diagonal_column_sums_below_one(batch, tau):
    logits, labels, k = batch
    c = soft_confusion(torch.tensor(logits), torch.tensor(labels), k, tau=tau).numpy()
    assert (c >= 0).all()
    np.testing.assert_array_equal(np.diag(c), np.zeros(k))
    col = c.sum(axis=0)
    assert (col < 1).all()
    # sharper: column j <= mean over the samples of class j of (1 - softmax(f/tau)_j), as in the proof of (e)
    probs = torch.softmax(torch.tensor(logits) / tau, dim=1).numpy()
    for j in range(k):
        rows = labels == j
        bound = float(np.mean(1.0 - probs[rows, j])) if rows.any() else 0.0
        assert col[j] <= bound + 1e-12


@st.composite
def separated_batches(draw):
    """Rows are permutations of 0..K-1 times a scale: a unique argmax with gap = scale."""
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 16))
    scale = draw(st.sampled_from([1.0, 2.0, 3.0]))
    rows = [draw(st.permutations(range(k))) for _ in range(n)]
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return scale * np.array(rows, dtype=np.float64), labels, k, scale


@settings(max_examples=30)
@given(separated_batches(), st.sampled_from([0.05, 0.3, 1.0]))
def test_soft_confusion_low_temperature_brackets_hard_error_rates(batch, tau):
    # statement (g) of proofs/car_spectral_facts.md: with eps = (K-1) exp(-gap/tau),
    # err_j (1 - eps) / 2 <= column sum j <= err_j + (1 - err_j) eps, err_j the argmax error rate of class j
    logits, labels, k, gap = batch
    col = soft_confusion(torch.tensor(logits), torch.tensor(labels), k, tau).numpy().sum(axis=0)
    eps = (k - 1) * math.exp(-gap / tau)
    pred = logits.argmax(axis=1)
    for j in range(k):
        rows = labels == j
        if not rows.any():
            assert col[j] == 0.0
            continue
        err = float(np.mean(pred[rows] != j))
        assert err * (1 - eps) / 2 - 1e-12 <= col[j] <= err + (1 - err) * eps + 1e-12


def test_soft_confusion_absent_classes_give_zero_columns():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 2, 2, 4, 0, 4, 4, 2, 0])          # classes 1 and 3 absent
    c = soft_confusion(logits, labels, 5)
    assert torch.equal(c[:, 1], torch.zeros(5, dtype=torch.float64))
    assert torch.equal(c[:, 3], torch.zeros(5, dtype=torch.float64))
    for j in (0, 2, 4):                                          # present classes: every off-diagonal entry > 0
        assert (c[[i for i in range(5) if i != j], j] > 0).all()
    # an empty batch gives the zero matrix
    assert torch.equal(soft_confusion(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3), torch.zeros(3, 3))


@settings(max_examples=25)
@given(batches(), taus, st.data())
def test_soft_confusion_invariant_to_shuffling_the_batch(batch, tau, data):
    logits, labels, k = batch
    order = data.draw(st.permutations(range(len(labels))))
    a = soft_confusion(torch.tensor(logits), torch.tensor(labels), k, tau)
    b = soft_confusion(torch.tensor(logits[order]), torch.tensor(labels[order]), k, tau)
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-15)


@settings(max_examples=25)
@given(batches(min_n=2), taus, st.data(), st.sampled_from([0.0, 0.5, 0.9]))
def test_relabelling_permutes_confusion_and_keeps_penalty(batch, tau, data, beta):
    logits, labels, k = batch
    p = np.array(data.draw(st.permutations(range(k))))          # class c is renamed p[c]
    logits2 = np.empty_like(logits)
    logits2[:, p] = logits
    labels2 = p[labels]
    perm = np.zeros((k, k))
    perm[p, np.arange(k)] = 1.0                                  # P e_c = e_{p[c]}
    c1 = soft_confusion(torch.tensor(logits), torch.tensor(labels), k, tau).numpy()
    c2 = soft_confusion(torch.tensor(logits2), torch.tensor(labels2), k, tau).numpy()
    np.testing.assert_allclose(c2, perm @ c1 @ perm.T, rtol=1e-12, atol=1e-15)
    counts = np.arange(1, k + 1) ** 2
    counts2 = np.empty_like(counts)
    counts2[p] = counts
    cfg = CARConfig(lam=0.7, tau=tau, beta=beta)
    reg1, reg2 = CARRegularizer(k, counts, cfg), CARRegularizer(k, counts2, cfg)
    np.testing.assert_allclose(reg2.weights.numpy()[p], reg1.weights.numpy(), rtol=1e-14)
    half = len(labels) // 2                                      # two steps: the EMA commutes with relabelling
    for sl in (slice(0, half), slice(half, None)):
        pen1 = reg1(torch.tensor(logits[sl]), torch.tensor(labels[sl]))
        pen2 = reg2(torch.tensor(logits2[sl]), torch.tensor(labels2[sl]))
        assert float(pen2) == pytest.approx(float(pen1), rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(reg2.ema.numpy(), perm @ reg1.ema.numpy() @ perm.T, rtol=1e-12, atol=1e-15)


def _soft_confusion_fixed_gate(logits, labels, k, tau, gate):
    """Second implementation: the same formula with the gate passed in as a constant tensor."""
    onehot = F.one_hot(labels, k).double()
    contrib = gate * torch.softmax(logits / tau, dim=1) * (1 - onehot)
    return (contrib.T @ onehot) / onehot.sum(0).clamp_min(1)[None, :]


def test_soft_confusion_gate_carries_no_gradient():
    g = torch.Generator().manual_seed(3)
    k, n, tau = 4, 10, 0.7
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, k, (n,), generator=g)
    cot = torch.rand(k, k, generator=g, dtype=torch.float64)     # a random cotangent: d(sum(C * cot))/d logits
    x = logits.clone().requires_grad_(True)
    (got,) = torch.autograd.grad((soft_confusion(x, labels, k, tau) * cot).sum(), x)
    gate = torch.sigmoid(logits - logits.gather(1, labels[:, None]))
    y = logits.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((_soft_confusion_fixed_gate(y, labels, k, tau, gate) * cot).sum(), y)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    # finite differences of the fixed-gate formula agree with it (so `want` is the derivative we claim)
    assert torch.autograd.gradcheck(lambda z: _soft_confusion_fixed_gate(z, labels, k, tau, gate),
                                    (logits.clone().requires_grad_(True),))
    # power: differentiating through the gate gives a different gradient
    z = logits.clone().requires_grad_(True)
    live_gate = torch.sigmoid(z - z.gather(1, labels[:, None]))
    (through,) = torch.autograd.grad((_soft_confusion_fixed_gate(z, labels, k, tau, live_gate) * cot).sum(), z)
    assert (through - want).abs().max() > 1e-3


def test_soft_confusion_dtype_device_and_gradient_flow():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.2, 0.1], [0.0, 0.0, 3.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 2])
    c32 = soft_confusion(logits, labels, 3)
    assert c32.dtype == torch.float32 and c32.device == logits.device
    c64 = soft_confusion(logits.detach().double(), labels, 3)
    assert c64.dtype == torch.float64
    torch.testing.assert_close(c32.double(), c64, rtol=1e-6, atol=1e-7)
    cbf = soft_confusion(logits.detach().bfloat16(), labels, 3)  # autocast output: computed in float32
    assert cbf.dtype == torch.float32
    torch.testing.assert_close(cbf, c32.detach(), rtol=2e-2, atol=2e-3)
    c32.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- spectral norm


@settings(max_examples=60)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    arrays(np.float64, (k, k), elements=st.floats(0, 1)),
    st.one_of(st.none(), arrays(np.float64, (k,), elements=st.floats(0, 3))))))
def test_weighted_spectral_norm_equals_top_singular_value(mw):
    m, w = mw
    got = weighted_spectral_norm(torch.tensor(m), None if w is None else torch.tensor(w))
    want = top_singular(m if w is None else m @ np.diag(w))
    assert got.dtype == torch.float64 and got.ndim == 0
    assert float(got) == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert float(weighted_spectral_norm(torch.tensor(m, dtype=torch.float32))) == pytest.approx(top_singular(m),
                                                                                                 rel=1e-5, abs=1e-6)


def test_weighted_spectral_norm_gradient_is_top_singular_pair_and_matches_finite_differences():
    g = torch.Generator().manual_seed(5)
    c = torch.rand(5, 5, generator=g, dtype=torch.float64)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    x = c.clone().requires_grad_(True)
    weighted_spectral_norm(x, w).backward()
    u, s, vt = np.linalg.svd(c.numpy() @ np.diag(w.numpy()))
    assert s[0] - s[1] > 1e-3                                    # distinct top value: the gradient is unique
    np.testing.assert_allclose(x.grad.numpy(), np.outer(u[:, 0], vt[0]) * w.numpy()[None, :], rtol=1e-9, atol=1e-12)
    assert torch.autograd.gradcheck(lambda m: weighted_spectral_norm(m, w), (c.clone().requires_grad_(True),))


def test_weighted_spectral_norm_zero_matrix_and_repeated_top_value_have_finite_gradients():
    zero = torch.zeros(4, 4, dtype=torch.float64, requires_grad=True)
    value = weighted_spectral_norm(zero, torch.ones(4, dtype=torch.float64))
    value.backward()
    assert value.item() == 0.0 and torch.equal(zero.grad, torch.zeros(4, 4, dtype=torch.float64))
    # a cyclic permutation matrix times 0.4: all singular values equal 0.4 (repeated top value)
    cyc = 0.4 * torch.roll(torch.eye(4, dtype=torch.float64), 1, dims=0)
    x = cyc.clone().requires_grad_(True)
    value = weighted_spectral_norm(x)
    value.backward()
    assert value.item() == pytest.approx(0.4, rel=1e-12)
    grad = x.grad.numpy()
    assert np.isfinite(grad).all()
    # a subgradient G of the spectral norm at M: <G, M> = ||M||_2 and nuclear norm ||G||_* <= 1
    assert float(np.sum(grad * cyc.numpy())) == pytest.approx(0.4, rel=1e-9)
    assert np.linalg.svd(grad, compute_uv=False).sum() <= 1 + 1e-9


# --------------------------------------------------------------------------------------------- weights


@settings(max_examples=60)
@given(arrays(np.int64, st.integers(1, 6), elements=st.integers(0, 1000)).filter(lambda a: a.sum() > 0),
       st.sampled_from([0.05, 0.2, 0.5, 2.0]))
def test_car_class_weights_formula_mean_one_and_monotone(counts, r0):
    w = car_class_weights(counts, r0=r0)
    assert w.dtype == torch.float64 and w.shape == (len(counts),)
    np.testing.assert_allclose(w.numpy(), numpy_weights(counts, r0), rtol=1e-13)
    # with r0 >= 0.05 and K <= 6 the floor 1e-3 never binds: the mean is exactly 1
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-13)
    m = counts / counts.sum()
    for a in range(len(counts)):
        for b in range(len(counts)):
            if m[a] < m[b]:
                assert w[a] > w[b]                              # rarer class, strictly larger weight
    # same result from a list and a tensor
    torch.testing.assert_close(car_class_weights(counts.tolist(), r0=r0), w)
    torch.testing.assert_close(car_class_weights(torch.tensor(counts), r0=r0), w)


def test_car_class_weights_clamp_binds():
    counts = [10 ** 8, 1, 1]                                     # r0 = 0: raw weights ~ [1, 1e4, 1e4]
    w = car_class_weights(counts, r0=0.0)
    raw = 1 / np.sqrt(np.array(counts) / sum(counts))
    assert raw[0] / raw.mean() < 1e-3                            # the head weight would fall below the floor
    assert float(w[0]) == 1e-3 and float(w.mean()) > 1.0
    np.testing.assert_allclose(w.numpy()[1:], (raw / raw.mean())[1:], rtol=1e-13)
    w2 = car_class_weights([50, 30, 20], r0=0.2, floor=0.99)    # a high floor clamps every weight below it
    unclamped = numpy_weights([50, 30, 20], 0.2, floor=0.0)
    np.testing.assert_allclose(w2.numpy(), np.maximum(unclamped, 0.99), rtol=1e-13)
    assert unclamped[0] < 0.99 and float(w2[0]) == 0.99


# ------------------------------------------------------------------------------------------ config, regulariser


def test_car_config_defaults_and_help():
    cfg = CARConfig()
    assert (cfg.lam, cfg.tau, cfg.r0, cfg.beta) == (0.3, 1.0, 0.2, 0.9)
    helps = {f.name: f.metadata.get("help", "") for f in fields(CARConfig)}
    assert set(helps) == {"lam", "tau", "r0", "beta"}
    for name, text in helps.items():
        assert "Default" in text and "PEERS.md" in text, name
    assert "0.5" in helps["beta"] and "ViT-S" in helps["beta"]
    with pytest.raises(FrozenInstanceError):
        cfg.lam = 1.0                                            # frozen


def _batch(seed: int, n: int = 12, k: int = 4, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=torch.float64) * scale, torch.randint(0, k, (n,), generator=g)


COUNTS = [40, 20, 8, 2]


def test_regularizer_first_call_initialises_ema_without_gradient():
    reg = CARRegularizer(4, COUNTS, CARConfig(lam=0.3))
    assert reg.ema is None and reg.steps == 0 and math.isnan(reg.last_spec)
    logits, labels = _batch(0)
    x = logits.clone().requires_grad_(True)
    pen = reg(x, labels)
    c_t = naive_soft_confusion(logits.numpy(), labels.numpy(), 4, 1.0)
    w = numpy_weights(COUNTS)
    assert not pen.requires_grad                                 # the first batch gives no gradient
    np.testing.assert_allclose(reg.ema.numpy(), c_t, rtol=1e-12)
    assert not reg.ema.requires_grad and reg.steps == 1
    assert reg.last_spec == pytest.approx(top_singular(c_t @ np.diag(w)), rel=1e-12)
    assert float(pen) == pytest.approx(0.3 * reg.last_spec, rel=1e-12) and float(pen) > 0


def test_regularizer_ema_matches_hand_computed_three_steps():
    lam, beta, tau = 0.3, 0.5, 1.5
    reg = CARRegularizer(4, COUNTS, CARConfig(lam=lam, tau=tau, beta=beta))
    w = numpy_weights(COUNTS)
    data = [_batch(s) for s in (1, 2, 3)]
    cs = [naive_soft_confusion(lg.numpy(), lb.numpy(), 4, tau) for lg, lb in data]
    hand = [cs[0], 0.5 * cs[0] + 0.5 * cs[1]]
    hand.append(0.5 * hand[1] + 0.5 * cs[2])
    xs = [lg.clone().requires_grad_(True) for lg, _ in data]
    pens = []
    for step in range(3):
        pens.append(reg(xs[step], data[step][1]))
        np.testing.assert_allclose(reg.ema.numpy(), hand[step], rtol=1e-12, atol=1e-15)
        assert pens[step].item() == pytest.approx(lam * top_singular(hand[step] @ np.diag(w)), rel=1e-12)
        assert reg.steps == step + 1
    # step 2: the gradient is lam * (1 - beta) * (u v^T diag(w)) pulled back through soft_confusion
    (g2,) = torch.autograd.grad(pens[1], xs[1], retain_graph=True)
    u, _, vt = np.linalg.svd(hand[1] @ np.diag(w))
    cot = torch.tensor(lam * (1 - beta) * np.outer(u[:, 0], vt[0]) * w[None, :])
    y = data[1][0].clone().requires_grad_(True)
    (want,) = torch.autograd.grad(soft_confusion(y, data[1][1], 4, tau), y, grad_outputs=cot)
    torch.testing.assert_close(g2, want, rtol=1e-9, atol=1e-12)
    # step 3: the previous EMA is detached, so the penalty reaches only the third batch
    g3 = torch.autograd.grad(pens[2], [xs[1], xs[2]], allow_unused=True)
    assert g3[0] is None and g3[1] is not None and g3[1].abs().sum() > 0


def test_regularizer_lambda_zero_gives_exactly_the_base_loss():
    data = [_batch(s, n=16) for s in (7, 8, 9)]
    reg0 = CARRegularizer(4, COUNTS, CARConfig(lam=0.0))
    reg3 = CARRegularizer(4, COUNTS, CARConfig(lam=0.3))
    for step, (logits, labels) in enumerate(data):
        x = logits.clone().requires_grad_(True)
        base = F.cross_entropy(x, labels)
        pen = reg0(x, labels)
        assert pen.ndim == 0 and float(pen) == 0.0
        total = base + pen
        assert torch.equal(total, base)
        (g_total,) = torch.autograd.grad(total, x, retain_graph=True)
        (g_base,) = torch.autograd.grad(base, x, retain_graph=True)
        assert torch.equal(g_total, g_base)
        # the EMA is still tracked for monitoring, with the same values as with lam > 0
        pen3 = reg3(x, labels)
        torch.testing.assert_close(reg0.ema, reg3.ema, rtol=0, atol=0)
        assert reg0.last_spec == pytest.approx(reg3.last_spec, rel=1e-14)
        if step:                                                 # power: lam > 0 changes the gradient
            (g3,) = torch.autograd.grad(base + pen3, x)
            assert (g3 - g_base).abs().max() > 1e-6


def test_regularizer_state_dict_round_trip_through_weights_only_load():
    cfg = CARConfig(lam=0.3, tau=1.0, r0=0.2, beta=0.9)
    data = [_batch(s, k=4) for s in range(10, 15)]
    reg = CARRegularizer(4, COUNTS, cfg)
    empty = io.BytesIO()
    torch.save(reg.state_dict(), empty)                          # before the first call: ema None
    empty.seek(0)
    fresh = CARRegularizer(4, COUNTS, cfg)
    fresh.load_state_dict(torch.load(empty, weights_only=True))
    assert fresh.ema is None and fresh.steps == 0
    for logits, labels in data[:2]:
        reg(logits, labels)
    state = reg.state_dict()
    assert set(state) == {"ema", "steps", "last_spec", "config"}
    assert isinstance(state["ema"], torch.Tensor) and state["steps"] == 2
    assert state["config"] == {"lam": 0.3, "tau": 1.0, "r0": 0.2, "beta": 0.9}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    restored = CARRegularizer(4, COUNTS, cfg)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert restored.steps == 2 and restored.last_spec == reg.last_spec and torch.equal(restored.ema, reg.ema)
    for logits, labels in data[2:]:
        xa, xb = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        pa, pb = reg(xa, labels), restored(xb, labels)
        assert torch.equal(pa, pb)
        (ga,), (gb,) = torch.autograd.grad(pa, xa), torch.autograd.grad(pb, xb)
        assert torch.equal(ga, gb)
    # power: without the restored state the next penalty on the same batch differs
    unrestored, check = CARRegularizer(4, COUNTS, cfg), CARRegularizer(4, COUNTS, cfg)
    check.load_state_dict(state)
    assert float(unrestored(*data[2])) != pytest.approx(float(check(*data[2])), rel=1e-6)


def test_regularizer_keeps_ema_on_logits_device_and_dtype():
    reg = CARRegularizer(3, [5, 3, 1], CARConfig())
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float32)
    pen = reg(logits, torch.tensor([0, 2]))
    assert reg.ema.dtype == torch.float32 and reg.ema.device == logits.device and pen.dtype == torch.float32
    pen = reg(logits.double(), torch.tensor([1, 2]))             # a later float64 batch: EMA follows the dtype
    assert reg.ema.dtype == torch.float64 and pen.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_regularizer_on_cuda_with_bfloat16_logits():
    dev = torch.device("cuda")
    reg = CARRegularizer(4, COUNTS, CARConfig(beta=0.5))
    cpu = CARRegularizer(4, COUNTS, CARConfig(beta=0.5))
    for s in (20, 21, 22):
        logits, labels = _batch(s)
        x = logits.float().to(dev).requires_grad_(True)
        pen = reg(x.bfloat16(), labels.to(dev))
        assert reg.ema.device.type == "cuda" and pen.device.type == "cuda" and pen.dtype == torch.float32
        ref = cpu(logits.bfloat16(), labels)
        assert pen.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)
        if s > 20:
            pen.backward()
            assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    state = reg.state_dict()
    assert state["ema"].device.type == "cpu"


# ------------------------------------------------------------------------------ hard confusion, spectral facts


@st.composite
def predictions(draw):
    k = draw(st.integers(2, 6))
    n = draw(st.integers(0, 16))
    pred = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return pred, labels, k


@settings(max_examples=60)
@given(predictions())
def test_confusion_rates_match_brute_force_count(pl):
    pred, labels, k = pl
    c = confusion_rates(torch.tensor(pred, dtype=torch.long), torch.tensor(labels, dtype=torch.long), k)
    assert c.dtype == torch.float64 and c.shape == (k, k)
    np.testing.assert_allclose(c.numpy(), brute_force_confusion_rates(pred, labels, k), rtol=1e-15)
    np.testing.assert_allclose(confusion_rates(np.array(pred, dtype=np.int64), labels, k).numpy(), c.numpy())


@settings(max_examples=60)
@given(predictions())
def test_norm_1_of_confusion_rates_is_worst_class_error(pl):
    pred, labels, k = pl
    errors = []
    for j in range(k):                                           # class error rates by a loop (0 if absent)
        idx = [s for s, y in enumerate(labels) if y == j]
        errors.append(sum(pred[s] != j for s in idx) / len(idx) if idx else 0.0)
    figs = spectral_figures(confusion_rates(pred, labels, k))
    assert figs["norm_1"] == pytest.approx(max(errors), abs=1e-15)
    worst = max(range(k), key=lambda j: (errors[j], -j))         # first index among ties
    assert figs["worst_column"] == worst


@settings(max_examples=80)
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(
    arrays(np.float64, (k, k), elements=st.floats(0, 1)),
    st.one_of(st.none(), arrays(np.float64, (k,), elements=st.floats(0, 3))))))
def test_spectral_figures_match_numpy_and_norm_inequalities(mw):
    m, w = mw
    k = m.shape[0]
    figs = spectral_figures(torch.tensor(m), None if w is None else torch.tensor(w))
    assert all(isinstance(v, float) for key, v in figs.items() if key != "worst_column")
    assert isinstance(figs["worst_column"], int)
    n1, n2, ninf = np.linalg.norm(m, 1), np.linalg.svd(m, compute_uv=False)[0], np.linalg.norm(m, np.inf)
    assert figs["norm_1"] == pytest.approx(n1, rel=1e-12, abs=1e-15)
    assert figs["norm_2"] == pytest.approx(n2, rel=1e-12, abs=1e-15)
    assert figs["norm_inf"] == pytest.approx(ninf, rel=1e-12, abs=1e-15)
    ww = np.ones(k) if w is None else w
    assert figs["weighted_norm_2"] == pytest.approx(top_singular(m @ np.diag(ww)), rel=1e-12, abs=1e-15)
    assert figs["sqrt_k_norm_2"] == pytest.approx(math.sqrt(k) * n2, rel=1e-12, abs=1e-15)
    assert figs["sqrt_norm1_norminf"] == pytest.approx(math.sqrt(n1 * ninf), rel=1e-12, abs=1e-15)
    assert figs["max_w_norm_2"] == pytest.approx(ww.max() * n2, rel=1e-12, abs=1e-15)
    assert figs["worst_column"] == int(np.argmax(m.sum(axis=0)))
    tol = 1e-12
    assert figs["norm_1"] <= figs["sqrt_k_norm_2"] * (1 + tol) + tol                # (b)
    assert figs["norm_2"] <= figs["sqrt_norm1_norminf"] * (1 + tol) + tol           # (c)
    assert figs["weighted_norm_2"] <= figs["max_w_norm_2"] * (1 + tol) + tol        # (d)
    assert figs["weighted_norm_2"] >= np.abs(ww).min() * n2 * (1 - tol) - tol      # (d), lower side


def test_spectral_figures_equality_cases():
    k = 4
    col = np.zeros((k, k))
    col[:, 2] = 0.25                                             # one constant column: ||C||_1 = sqrt(K) ||C||_2
    f = spectral_figures(torch.tensor(col))
    assert f["norm_1"] == pytest.approx(f["sqrt_k_norm_2"], rel=1e-12) and f["worst_column"] == 2
    perm = 0.3 * np.roll(np.eye(k), 1, axis=0)                   # scaled permutation: equality in (c)
    f = spectral_figures(torch.tensor(perm))
    assert f["norm_2"] == pytest.approx(f["sqrt_norm1_norminf"], rel=1e-12)
    f = spectral_figures(torch.tensor(perm), torch.full((k,), 2.5))  # constant weights: equality in (d)
    assert f["weighted_norm_2"] == pytest.approx(f["max_w_norm_2"], rel=1e-12) == pytest.approx(0.75)
    f = spectral_figures(torch.tensor(perm), torch.tensor([2.5, 1.0, 1.0, 1.0]))
    assert f["weighted_norm_2"] == pytest.approx(0.75) and f["norm_2"] == pytest.approx(0.3)
    # the soft confusion of a batch is a valid input; its figures obey the same facts
    logits, labels = _batch(30, n=16, k=5)
    f = spectral_figures(soft_confusion(logits, labels, 5), car_class_weights([100, 50, 20, 5, 1]))
    assert f["norm_1"] < 1 and f["weighted_norm_2"] <= f["max_w_norm_2"] + 1e-12


# ------------------------------------------------------------------------------------------------ validation

Z23 = torch.zeros(2, 3)
L01 = torch.tensor([0, 1])


def _loaded(state):
    reg = CARRegularizer(3, [1, 1, 1], CARConfig())
    reg.load_state_dict(state)


@pytest.mark.parametrize("call, match", [
    (lambda: soft_confusion(Z23, L01, 2), "shape"),
    (lambda: soft_confusion(torch.zeros(3), torch.tensor([0, 1, 2]), 3), "shape"),
    (lambda: soft_confusion(Z23, torch.tensor([0, 3]), 3), r"\[0, 2\]"),
    (lambda: soft_confusion(Z23, torch.tensor([0, -1]), 3), r"\[0, 2\]"),
    (lambda: soft_confusion(Z23, torch.tensor([0.0, 1.0]), 3), "integers"),
    (lambda: soft_confusion(Z23, torch.tensor([True, False]), 3), "integers"),
    (lambda: soft_confusion(Z23, torch.tensor([0]), 3), "2 entries"),
    (lambda: soft_confusion(Z23, L01, 3, tau=0.0), "tau"),
    (lambda: soft_confusion(Z23, L01, 3, tau=-1.0), "tau"),
    (lambda: soft_confusion(Z23, L01, 3, tau=float("inf")), "tau"),
    (lambda: soft_confusion(Z23, L01, 3, tau=float("nan")), "tau"),
    (lambda: soft_confusion(torch.tensor([[0.0, float("nan"), 0.0]]), [0], 3), "NaN"),
    (lambda: soft_confusion(torch.tensor([[0.0, float("inf"), 0.0]]), [0], 3), "NaN"),
    (lambda: soft_confusion(torch.zeros(2, 3, dtype=torch.long), L01, 3), "floating-point"),
    (lambda: soft_confusion(np.zeros((2, 3)), L01, 3), "floating-point"),
    (lambda: soft_confusion(torch.zeros(2, 1), L01, 1), "at least 2"),
    (lambda: car_class_weights([1, -1, 1]), "non-negative"),
    (lambda: car_class_weights([1, float("nan")]), "non-negative"),
    (lambda: car_class_weights([0, 0, 0]), "all be zero"),
    (lambda: car_class_weights([]), "non-empty"),
    (lambda: car_class_weights([[1, 2], [3, 4]]), "1-D"),
    (lambda: car_class_weights(["a", "b"]), "numbers"),
    (lambda: car_class_weights([1, 2], r0=-0.1), "r0"),
    (lambda: car_class_weights([1, 0], r0=0.0), "r0 = 0"),
    (lambda: car_class_weights([1, 2], floor=-1.0), "floor"),
    (lambda: weighted_spectral_norm(torch.zeros(3)), "2-D"),
    (lambda: weighted_spectral_norm(torch.tensor([[float("nan")]])), "NaN"),
    (lambda: weighted_spectral_norm(torch.zeros(2, 2, dtype=torch.long)), "floating-point"),
    (lambda: weighted_spectral_norm(torch.zeros(2, 2), torch.ones(3)), "one entry per column"),
    (lambda: weighted_spectral_norm(torch.zeros(2, 2), torch.tensor([1.0, float("inf")])), "NaN"),
    (lambda: CARConfig(lam=-0.1), "lam"),
    (lambda: CARConfig(lam=float("nan")), "lam"),
    (lambda: CARConfig(lam=True), "lam"),
    (lambda: CARConfig(tau=0.0), "tau"),
    (lambda: CARConfig(tau=float("inf")), "tau"),
    (lambda: CARConfig(r0=-0.1), "r0"),
    (lambda: CARConfig(beta=1.0), "beta"),
    (lambda: CARConfig(beta=-0.1), "beta"),
    (lambda: CARConfig(beta="0.5"), "beta"),
    (lambda: CARRegularizer(3, [1, 2], CARConfig()), "one entry per class"),
    (lambda: CARRegularizer(1, [1], CARConfig()), "at least 2"),
    (lambda: CARRegularizer(3, [1, 2, 3], {"lam": 0.3}), "CARConfig"),
    (lambda: CARRegularizer(3, [1, 2, 3], CARConfig())(torch.zeros(2, 4), L01), "shape"),
    (lambda: _loaded({"ema": torch.zeros(4, 4), "steps": 1}), r"shape \(3, 3\)"),
    (lambda: _loaded({"ema": torch.zeros(3, 3, dtype=torch.long), "steps": 1}), "floating-point"),
    (lambda: _loaded({"ema": None, "steps": 2}), "inconsistent"),
    (lambda: _loaded({"ema": torch.zeros(3, 3), "steps": -1}), "steps"),
    (lambda: _loaded({"ema": torch.full((3, 3), float("nan")), "steps": 1}), "NaN"),
    (lambda: _loaded([1, 2]), "dictionary"),
    (lambda: confusion_rates([0, 1], [0], 2), "same length"),
    (lambda: confusion_rates([0, 2], [0, 1], 2), "predictions"),
    (lambda: confusion_rates([0, 1], [0, 5], 2), "labels"),
    (lambda: confusion_rates([0.0, 1.0], [0, 1], 2), "integers"),
    (lambda: confusion_rates([0, 1], [0, 1], 1), "at least 2"),
    (lambda: spectral_figures(torch.zeros(2, 3)), "square"),
    (lambda: spectral_figures(torch.zeros(2, 2, 2)), "square"),
    (lambda: spectral_figures(torch.tensor([[float("nan")]])), "NaN"),
    (lambda: spectral_figures(torch.zeros(2, 2), torch.ones(3)), "one entry per column"),
    (lambda: spectral_figures([[1.0]]), "real-valued"),
])
def test_validation_car(call, match):
    with pytest.raises(ValueError, match=match):
        call()
