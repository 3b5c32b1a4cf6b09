"""Monte Carlo ERC chunked to a memory budget, and on the GPU: the same draws whatever the chunking or device.

The sign words always come from one serial CPU generator (scilt_theory/rademacher.py, "Sign draws"), so a tiny
memory budget (many chunks) gives the same draws (bit for bit, checked below on the signs themselves) and the same
estimate up to the last bits of float64: BLAS may block a (c·K, n) @ (n, d) product differently for another number
of rows c, so per-draw norms may differ by an ulp (seen on one machine and not another).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scilt_theory.rademacher import _SignStream, rademacher_coupled_scilt, rademacher_linear, rademacher_signs

CUDA = torch.cuda.is_available()


def _psi(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)))


@pytest.mark.parametrize("norm, k", [("row", 1), ("row", 4), ("frobenius", 3)])
def test_mc_estimate_is_identical_under_a_budget_that_forces_many_chunks(norm, k):
    psi = _psi(0, 70, 9)
    ref = rademacher_linear(psi, 2.0, num_outputs=k, norm=norm, n_draws=300, seed=5)
    for budget in (1, 3000, 40_000):   # 1 byte: one draw per chunk
        got = rademacher_linear(psi, 2.0, num_outputs=k, norm=norm, n_draws=300, seed=5, memory_budget_bytes=budget)
        assert (got.value, got.stderr, got.upper) == pytest.approx((ref.value, ref.stderr, ref.upper), rel=1e-12)


def test_coupled_mc_estimate_is_identical_under_many_chunks():
    p1, p2 = _psi(1, 40, 6), _psi(2, 40, 6)
    ref = rademacher_coupled_scilt(p1, p2, 3, 10.0, method="mc", n_draws=200, seed=3)
    for budget in (1, 5000):
        got = rademacher_coupled_scilt(p1, p2, 3, 10.0, method="mc", n_draws=200, seed=3, memory_budget_bytes=budget)
        assert (got.value, got.sum_value, got.upper) == pytest.approx((ref.value, ref.sum_value, ref.upper),
                                                                      rel=1e-12)


def test_host_generated_words_give_the_cpu_stream_for_any_chunking():
    """The accelerator path (words drawn on the host, copied over) run on CPU: same signs as the CPU path."""
    direct = _SignStream(130, 2, 11, torch.device("cpu"), torch.float32)
    want = torch.cat([direct.next(7).clone() for _ in range(6)])
    for sizes in ([42], [1] * 42, [5, 30, 7]):
        stream = _SignStream(130, 2, 11, torch.device("cpu"), torch.float32)
        stream.via_host = True
        got = torch.cat([stream.next(c).clone() for c in sizes])
        assert torch.equal(got, want)
    assert torch.equal(want, torch.cat(list(rademacher_signs(130, 42, num_columns=2, seed=11))))


def test_bounds_erc_on_an_explicit_device_equals_the_default_path():
    import dataclasses

    from scilt_theory.grid import BoundGrid
    from scilt_theory.statements import fused_model_bounds

    rng = np.random.default_rng(4)
    psi1, psi2 = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    labels = np.arange(60) % 3
    scores = rng.normal(size=(60, 3))
    kwargs = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, grid=BoundGrid(rhos=(1.0,)), n_draws=50,
                  method="mc")
    a = fused_model_bounds(psi1, psi2, scores, labels, **kwargs)
    b = fused_model_bounds(psi1, psi2, scores, labels, device=torch.device("cpu"), **kwargs)
    assert a.records == b.records and dataclasses.asdict(a.views()) == dataclasses.asdict(b.views())


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_mc_on_cuda_uses_the_cpu_draws_and_any_chunking():  # pragma: no cover - GPU machines only
    psi = _psi(6, 3000, 64)
    cpu = rademacher_linear(psi, 1.0, norm="row", n_draws=500, seed=2)
    gpu = rademacher_linear(psi.cuda(), 1.0, norm="row", n_draws=500, seed=2)
    tiny = rademacher_linear(psi.cuda(), 1.0, norm="row", n_draws=500, seed=2, memory_budget_bytes=50_000)
    assert gpu.value == pytest.approx(cpu.value, rel=1e-10)
    assert tiny.value == gpu.value and tiny.stderr == gpu.stderr
    signs_cpu = torch.cat(list(rademacher_signs(100, 30, seed=1)))
    signs_gpu = torch.cat(list(rademacher_signs(100, 30, seed=1, device="cuda", chunk_draws=7)))
    assert torch.equal(signs_cpu, signs_gpu.cpu())
