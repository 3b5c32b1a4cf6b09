"""The CUDA-style paths that do not need CUDA, run on CPU: bf16 autocast training steps (TrainConfig.precision),
``--compile`` (one step of a tiny model through inductor), and the device-agnostic complexity code (the host-drawn
sign words an accelerator gets, accelerator chunking, estimators given a ``torch.device``).

What is left untested on a CPU-only machine is what needs CUDA itself; ``benchmarks/gpu_suite.sh`` runs it (and
the test at the end of this file) on a lent device.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
import torch

from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, autocast_for, predict, run_epoch, set_up

CPU = torch.device("cpu")
CUDA = torch.cuda.is_available()
# one batch of the fit split holds every image (33 here): one optimiser step per epoch, one compiled graph
DATA = DataConfig(name="synthetic-lt", imbalance=2.0, max_per_class=16, test_per_class=4, image_size=16,
                  num_classes=3)
MODEL = ModelConfig(num_classes=3, img_size=16, patch_size=4, depth=2, adapter="full")


def _config(out, **kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "warmup_epochs": 0,
                          "augment": False, "out": str(out), "quiet": True, **kw})


def _one_epoch(out, **kw):
    """set_up + one epoch; returns the run (``run.progress.history[0]``: the epoch's record), the dtypes the first
    block's qkv produced, and the initial weights."""
    run = set_up(DATA, MODEL, _config(out, **kw), log=lambda _: None)
    before = {k: v.detach().clone() for k, v in run.model.named_parameters()}
    dtypes: list[torch.dtype] = []
    hook = run.model.backbone.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    try:
        run_epoch(run, 0, log=lambda _: None)
    finally:
        hook.remove()
    return run, dtypes, before


# ---- TrainConfig.precision ---------------------------------------------------------------------------------
def test_precision_is_a_declared_option_with_its_cli_flag():
    from experiments._cli import dataclass_from_args
    from experiments.train import build_parser

    assert TrainConfig().precision == "auto"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
    args = build_parser().parse_args(["--precision", "bf16"])
    assert dataclass_from_args(TrainConfig, args).precision == "bf16"


@pytest.mark.parametrize("precision, bf16", [("auto", False), ("fp32", False), ("bf16", True)])
def test_autocast_for_on_cpu(precision, bf16):
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_for(precision, CPU):
        assert torch.is_autocast_enabled("cpu") is bf16
        assert (a @ b).dtype == (torch.bfloat16 if bf16 else torch.float32)


def test_bf16_training_steps_on_cpu(tmp_path):
    run, dtypes, before = _one_epoch(tmp_path / "bf16", precision="bf16")
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the forward ran in bfloat16
    assert run.progress.global_step == 1 and np.isfinite(run.progress.history[0]["loss"])
    for name, p in run.model.named_parameters():  # master weights stay float32, finite, and moved
        assert p.dtype == torch.float32 and torch.isfinite(p).all(), name
    assert any(not torch.equal(p, before[n]) for n, p in run.model.named_parameters() if p.requires_grad)
    images = run.data.test_images
    scores_bf16 = predict(run.model, images, 8, CPU, precision="bf16")
    scores_fp32 = predict(run.model, images, 8, CPU, precision="fp32")
    assert scores_bf16.dtype == torch.float32 and not torch.equal(scores_bf16, scores_fp32)
    torch.testing.assert_close(scores_bf16, scores_fp32, atol=0.5, rtol=0.05)  # cosine scale 25: bf16 rounding
    assert torch.equal(predict(run.model, images, 8, CPU), scores_fp32)  # auto is fp32 on CPU


def test_auto_precision_on_cpu_is_the_fp32_run_bit_for_bit(tmp_path):
    auto, dtypes_auto, _ = _one_epoch(tmp_path / "auto")
    fp32, dtypes_fp32, _ = _one_epoch(tmp_path / "fp32", precision="fp32")
    assert set(dtypes_auto) == set(dtypes_fp32) == {torch.float32}
    for (name, a), (_, b) in zip(auto.model.named_parameters(), fp32.model.named_parameters()):
        assert torch.equal(a, b), name


# ---- --compile ----------------------------------------------------------------------------------------------
def _cxx() -> str:
    """The C++ compiler torch.compile's inductor backend looks for on CPU (torch/_inductor/config.py cpp.cxx)."""
    return os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")


@pytest.mark.skipif(shutil.which(_cxx()) is None,
                    reason=f"torch.compile (inductor) needs a C++ compiler on CPU: {_cxx()!r} ($CXX or the default) "
                           f"is not on PATH")
def test_compiled_bf16_training_step_on_cpu_matches_eager(tmp_path):
    compiled, dtypes_c, before = _one_epoch(tmp_path / "compiled", precision="bf16", compile=True)
    eager, dtypes_e, _ = _one_epoch(tmp_path / "eager", precision="bf16")
    assert hasattr(compiled.net, "_orig_mod") and not hasattr(eager.net, "_orig_mod")  # torch.compile's wrapper
    # dynamo runs the hook while tracing the bf16 graph (on fake tensors), or not at all; eager at every step
    assert set(dtypes_c) <= {torch.bfloat16} and set(dtypes_e) == {torch.bfloat16}
    assert compiled.progress.global_step == eager.progress.global_step == 1
    assert compiled.progress.history[0]["loss"] == pytest.approx(eager.progress.history[0]["loss"], rel=0.02)
    # the same SGD step up to bf16 rounding: compare the weight updates of the two runs
    delta_c = torch.cat([(p.detach() - before[n]).flatten() for n, p in compiled.model.named_parameters()])
    delta_e = torch.cat([(p.detach() - before[n]).flatten() for n, p in eager.model.named_parameters()])
    assert delta_e.norm() > 0
    assert (delta_c - delta_e).norm() <= 0.05 * delta_e.norm()


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_training_steps_on_cuda_run_in_bf16_by_default(tmp_path):  # pragma: no cover - GPU machines only
    auto, dtypes_auto, _ = _one_epoch(tmp_path / "auto", device="cuda")
    fp32, dtypes_fp32, _ = _one_epoch(tmp_path / "fp32", device="cuda", precision="fp32")
    assert set(dtypes_auto) == {torch.bfloat16} and set(dtypes_fp32) == {torch.float32}
    assert auto.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    for run in (auto, fp32):
        assert np.isfinite(run.progress.history[0]["loss"])
        assert all(torch.isfinite(p).all() for p in run.model.parameters())


# ---- device-agnostic complexity code -----------------------------------------------------------------------
def _psi(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)))


def test_estimators_on_the_accelerator_sign_path_equal_the_cpu_path(monkeypatch):
    """MC estimates with the sign words drawn on the host and copied to the features' device (what CUDA features
    get), run on CPU tensors: the same numbers as the CPU path, for the linear and the coupled estimators."""
    from scilt_theory import rademacher

    psi1, psi2 = _psi(0, 90, 7), _psi(1, 90, 7)
    runs = [lambda: rademacher.rademacher_linear(psi1, 2.0, num_outputs=4, norm="row", n_draws=200, seed=3),
            lambda: rademacher.rademacher_linear(psi1, 2.0, num_outputs=3, norm="frobenius", n_draws=200, seed=3,
                                                 memory_budget_bytes=20_000),
            lambda: rademacher.rademacher_coupled_scilt(psi1, psi2, 3, 10.0, method="mc", n_draws=150, seed=4)]
    want = [r() for r in runs]
    original = rademacher._SignStream.__init__

    def via_host(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.via_host = True

    monkeypatch.setattr(rademacher._SignStream, "__init__", via_host)
    for run, expected in zip(runs, want):
        assert run().to_dict() == expected.to_dict()


def test_accelerator_chunks_are_bound_by_the_memory_budget_alone():
    from scilt_theory.rademacher import _CPU_CHUNK_BYTES, _chunk_draws

    per_draw, budget = 1 << 20, 256 << 20
    assert _chunk_draws(per_draw, budget, 10_000, torch.device("cuda")) == budget // per_draw
    assert _chunk_draws(per_draw, budget, 10_000, CPU) == 256  # on CPU also about 16 MiB, at least 256 draws
    assert _chunk_draws(1024, budget, 100_000, CPU) == _CPU_CHUNK_BYTES // 1024  # 16384 draws
    assert _chunk_draws(1024, budget, 100_000, torch.device("cuda")) == 100_000
    assert _chunk_draws(per_draw, budget, 100, torch.device("cuda")) == 100


def test_estimators_and_bounds_given_a_torch_device():
    from scilt_theory.grid import BoundGrid
    from scilt_theory.rademacher import rademacher_coupled_scilt, rademacher_linear, rademacher_signs
    from scilt_theory.statements import fused_model_bounds

    signs = torch.cat(list(rademacher_signs(70, 30, num_columns=2, seed=1, device=CPU, chunk_draws=7)))
    assert torch.equal(signs, torch.cat(list(rademacher_signs(70, 30, num_columns=2, seed=1))))
    psi1, psi2 = _psi(2, 60, 5), _psi(3, 60, 5)
    on = psi1.to(CPU)
    assert rademacher_linear(on, 1.0, norm="row", n_draws=100).value == \
        rademacher_linear(psi1.numpy(), 1.0, norm="row", n_draws=100).value
    assert rademacher_coupled_scilt(on, psi2.to(CPU), 3, 5.0, n_draws=50).to_dict() == \
        rademacher_coupled_scilt(psi1.numpy(), psi2.numpy(), 3, 5.0, n_draws=50).to_dict()
    rng = np.random.default_rng(4)
    labels, scores = np.arange(60) % 3, rng.normal(size=(60, 3))
    kwargs = dict(num_classes=3, radius_penult=2.0, radius_final=1.0, grid=BoundGrid(rhos=(1.0,)), n_draws=50,
                  method="mc", coupled_scale=5.0)  # the coupled statements too: _coupled_erc on the device
    a = fused_model_bounds(psi1.numpy(), psi2.numpy(), scores, labels, **kwargs)
    b = fused_model_bounds(psi1.numpy(), psi2.numpy(), scores, labels, device=CPU, **kwargs)
    assert a.context.coupled_unit and a.records == b.records
