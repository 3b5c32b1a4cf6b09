"""H2T channel fusion, the samplers, the PIF reconstruction and the classifier re-training stage (PEERS.md)."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from scilt_theory.h2t import (
    PIF_IS_RECONSTRUCTION,
    PIF_NOTE,
    PIF_VARIANTS,
    H2TConfig,
    MeanPIF,
    PermutationInvariantFusion,
    SimilarityPIF,
    build_pif,
    class_balanced_indices,
    h2t_channels,
    h2t_fuse,
    instance_indices,
    retrain_classifier,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def naive_floor(rho: float, dim: int) -> int:
    return math.floor(Fraction(str(rho)) * dim)  # the decimal the user wrote, exactly


def disjoint_pair(b: int, d: int, seed: int, extra: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced features all < 0 and instance features all > 0, so every entry tells where it came from."""
    g = gen(seed)
    shape = (b, d, *extra)
    return -1.0 - torch.rand(shape, generator=g, dtype=torch.float64), 1.0 + torch.rand(shape, generator=g,
                                                                                         dtype=torch.float64)


def naive_fuse(balanced: torch.Tensor, instance: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    chosen = set(channels.tolist())
    out = torch.empty_like(balanced)
    for r in range(balanced.shape[0]):
        for c in range(balanced.shape[1]):
            out[r, c] = instance[r, c] if c in chosen else balanced[r, c]
    return out


rhos = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.75, 0.9, 1.0]) | st.floats(0.0, 1.0)


# ---- h2t_channels ------------------------------------------------------------------------------------
@given(st.integers(1, 64), rhos, st.integers(0, 2**31 - 1))
def test_channels_count_distinct_and_in_range(dim, rho, seed):
    ch = h2t_channels(dim, rho, gen(seed))
    assert ch.dtype == torch.long and ch.ndim == 1
    assert ch.numel() == naive_floor(rho, dim)
    assert torch.unique(ch).numel() == ch.numel()
    assert ch.numel() == 0 or (0 <= int(ch.min()) and int(ch.max()) < dim)
    # the documented draw: the first k entries of randperm(dim)
    torch.testing.assert_close(ch, torch.randperm(dim, generator=gen(seed))[:ch.numel()])


def test_channels_floor_is_robust_to_float_error():
    # 0.29 * 100 is 28.999999999999996 in binary floating point, so a float floor loses a channel (the same for
    # 0.57 * 100 and 0.58 * 100); 0.3 * 10 happens to round to exactly 3.0, so it is no test of the rule
    assert math.floor(0.29 * 100) == 28 and math.floor(0.57 * 100) == 56 and 0.3 * 10 == 3.0
    assert h2t_channels(100, 0.29, gen()).numel() == 29
    assert h2t_channels(100, 0.57, gen()).numel() == 57
    assert h2t_channels(100, 0.58, gen()).numel() == 58
    assert h2t_channels(10, 0.3, gen()).numel() == 3
    assert h2t_channels(768, 0.25, gen()).numel() == 192
    assert h2t_channels(7, 0.5, gen()).numel() == 3
    assert h2t_channels(5, 0.0, gen()).numel() == 0
    assert h2t_channels(5, 1.0, gen()).numel() == 5
    assert h2t_channels(10, 0.9999999999, gen()).numel() == 9  # no over-rounding either


def test_channels_reproducible_and_seed_dependent():
    torch.testing.assert_close(h2t_channels(50, 0.5, gen(3)), h2t_channels(50, 0.5, gen(3)))
    assert not torch.equal(h2t_channels(50, 0.5, gen(3)), h2t_channels(50, 0.5, gen(4)))


@pytest.mark.parametrize("dim, rho", [(0, 0.5), (-3, 0.5), (2.0, 0.5), (True, 0.5), (10, -0.1), (10, 1.5),
                                      (10, float("nan")), (10, "0.5"), (10, None)])
def test_channels_bad_inputs(dim, rho):
    with pytest.raises(ValueError):
        h2t_channels(dim, rho, gen())


def test_channels_needs_a_generator():
    with pytest.raises(ValueError):
        h2t_channels(10, 0.5, 0)


# ---- h2t_fuse ----------------------------------------------------------------------------------------
@given(st.integers(1, 6), st.integers(1, 12), rhos, st.integers(0, 2**31 - 1))
@settings(max_examples=60)
def test_fuse_matches_naive_loop_and_copies_floor_rho_d_channels(b, d, rho, seed):
    bal, ins = disjoint_pair(b, d, seed)
    out = h2t_fuse(bal, ins, rho, generator=gen(seed))
    ch = h2t_channels(d, rho, gen(seed))  # the same draw
    torch.testing.assert_close(out, naive_fuse(bal, ins, ch), rtol=0, atol=0)
    from_instance = out > 0
    # exactly floor(rho D) columns come from the instance features, the same columns in every row
    assert int(from_instance[0].sum()) == naive_floor(rho, d)
    assert bool((from_instance == from_instance[0]).all())


def test_fuse_same_subset_for_all_rows():
    bal, ins = disjoint_pair(32, 40, 1)
    out = h2t_fuse(bal, ins, 0.5, generator=gen(2))
    cols = [frozenset(torch.nonzero(row > 0).flatten().tolist()) for row in out]
    assert len(set(cols)) == 1 and len(cols[0]) == 20


def test_fuse_rho_zero_gives_balanced_and_rho_one_gives_instance():
    bal, ins = disjoint_pair(4, 9, 5)
    zero = h2t_fuse(bal, ins, 0.0, generator=gen())
    one = h2t_fuse(bal, ins, 1.0, generator=gen())
    torch.testing.assert_close(zero, bal, rtol=0, atol=0)
    torch.testing.assert_close(one, ins, rtol=0, atol=0)
    # new tensors, not views of the inputs
    assert zero.data_ptr() != bal.data_ptr() and one.data_ptr() != ins.data_ptr()


@given(st.integers(1, 5), st.integers(1, 10), rhos, st.integers(0, 1000))
@settings(max_examples=40)
def test_fuse_leaves_inputs_untouched(b, d, rho, seed):
    bal, ins = disjoint_pair(b, d, seed)
    bal0, ins0 = bal.clone(), ins.clone()
    out = h2t_fuse(bal, ins, rho, generator=gen(seed))
    torch.testing.assert_close(bal, bal0, rtol=0, atol=0)
    torch.testing.assert_close(ins, ins0, rtol=0, atol=0)
    out.add_(100.0)  # writing into the result must not reach the inputs either
    torch.testing.assert_close(bal, bal0, rtol=0, atol=0)
    torch.testing.assert_close(ins, ins0, rtol=0, atol=0)


@given(st.integers(1, 5), st.integers(1, 10), rhos, st.integers(0, 1000))
@settings(max_examples=40)
def test_fuse_gradient_reaches_each_input_on_the_entries_it_supplies(b, d, rho, seed):
    bal, ins = disjoint_pair(b, d, seed)
    bal.requires_grad_(True)
    ins.requires_grad_(True)
    ch = h2t_channels(d, rho, gen(seed))
    w = torch.rand(b, d, generator=gen(seed + 1), dtype=torch.float64) + 0.5
    (h2t_fuse(bal, ins, rho, channels=ch) * w).sum().backward()
    mask = torch.zeros(d, dtype=torch.float64)
    mask[ch] = 1.0
    torch.testing.assert_close(ins.grad, w * mask, rtol=0, atol=0)
    torch.testing.assert_close(bal.grad, w * (1 - mask), rtol=0, atol=0)


def test_fuse_channels_on_dim_one_for_higher_rank_features():
    bal, ins = disjoint_pair(3, 8, 7, extra=(2, 2))
    ch = h2t_channels(8, 0.25, gen(1))
    out = h2t_fuse(bal, ins, 0.25, channels=ch)
    for c in range(8):
        src = ins if c in set(ch.tolist()) else bal
        torch.testing.assert_close(out[:, c], src[:, c], rtol=0, atol=0)


def test_fuse_given_channels_equal_the_generator_draw():
    bal, ins = disjoint_pair(5, 16, 3)
    torch.testing.assert_close(h2t_fuse(bal, ins, 0.25, generator=gen(9)),
                               h2t_fuse(bal, ins, 0.25, channels=h2t_channels(16, 0.25, gen(9))), rtol=0, atol=0)


@pytest.mark.parametrize("case", ["shape", "dtype", "rank", "not_tensor", "no_source", "rho", "wrong_count",
                                  "duplicate", "out_of_range", "float_channels"])
def test_fuse_bad_inputs(case):
    bal, ins = disjoint_pair(2, 8, 0)
    kwargs: dict = {"generator": gen()}
    rho = 0.25
    if case == "shape":
        ins = ins[:, :7]
    elif case == "dtype":
        ins = ins.float()
    elif case == "rank":
        bal, ins = bal[0], ins[0]
    elif case == "not_tensor":
        bal = bal.tolist()
    elif case == "no_source":
        kwargs = {}
    elif case == "rho":
        rho = 1.25
    elif case == "wrong_count":
        kwargs = {"channels": torch.tensor([0, 1, 2])}
    elif case == "duplicate":
        kwargs = {"channels": torch.tensor([3, 3])}
    elif case == "out_of_range":
        kwargs = {"channels": torch.tensor([0, 8])}
    elif case == "float_channels":
        kwargs = {"channels": torch.tensor([0.0, 1.0])}
    with pytest.raises(ValueError):
        h2t_fuse(bal, ins, rho, **kwargs)


# ---- samplers ----------------------------------------------------------------------------------------
def long_tailed_labels() -> torch.Tensor:
    # classes 1, 4 and 6 present (200 / 20 / 2 samples), classes 0, 2, 3, 5 absent; shuffled
    labels = torch.cat([torch.full((200,), 1), torch.full((20,), 4), torch.full((2,), 6)])
    return labels[torch.randperm(labels.numel(), generator=gen(11))]


def test_class_balanced_draws_present_classes_about_equally_often():
    labels = long_tailed_labels()
    draws = 30_000
    idx = class_balanced_indices(labels, draws, gen(0))
    assert idx.shape == (draws,) and idx.dtype == torch.long
    assert 0 <= int(idx.min()) and int(idx.max()) < labels.numel()
    drawn = labels[idx]
    assert set(drawn.tolist()) == {1, 4, 6}
    freq = torch.bincount(drawn, minlength=7).double() / draws
    for c in (1, 4, 6):
        assert abs(float(freq[c]) - 1 / 3) < 0.02  # sd is 0.0027; instance sampling would give 0.90/0.09/0.01
    # within a class the samples are uniform too: the two samples of class 6 about half each
    rare = torch.nonzero(labels == 6).flatten().tolist()
    hits = torch.tensor([int((idx == r).sum()) for r in rare], dtype=torch.float64)
    assert abs(float(hits[0] / hits.sum()) - 0.5) < 0.05
    # every sample of the mid class is drawn at some point
    assert set(torch.nonzero(labels == 4).flatten().tolist()) <= set(idx.tolist())


def test_class_balanced_reproducible_and_seed_dependent():
    labels = long_tailed_labels()
    torch.testing.assert_close(class_balanced_indices(labels, 64, gen(5)), class_balanced_indices(labels, 64, gen(5)))
    assert not torch.equal(class_balanced_indices(labels, 64, gen(5)), class_balanced_indices(labels, 64, gen(6)))


@given(st.lists(st.integers(-3, 5), min_size=1, max_size=20), st.integers(1, 30), st.integers(0, 1000))
@settings(max_examples=40)
def test_class_balanced_indices_point_at_present_labels(label_list, batch, seed):
    labels = torch.tensor(label_list)
    idx = class_balanced_indices(labels, batch, gen(seed))
    assert idx.shape == (batch,)
    assert 0 <= int(idx.min()) and int(idx.max()) < labels.numel()


def test_instance_sampling_follows_the_sample_proportions():
    labels = long_tailed_labels()
    draws = 30_000
    idx = instance_indices(labels.numel(), draws, gen(0))
    assert idx.shape == (draws,) and idx.dtype == torch.long
    assert 0 <= int(idx.min()) and int(idx.max()) < labels.numel()
    freq = torch.bincount(labels[idx], minlength=7).double() / draws
    for c, n in ((1, 200), (4, 20), (6, 2)):
        assert abs(float(freq[c]) - n / 222) < 0.02
    torch.testing.assert_close(instance_indices(50, 20, gen(2)), instance_indices(50, 20, gen(2)))
    assert not torch.equal(instance_indices(50, 20, gen(2)), instance_indices(50, 20, gen(3)))


@pytest.mark.parametrize("call", [
    lambda: class_balanced_indices(torch.tensor([], dtype=torch.long), 4, gen()),
    lambda: class_balanced_indices(torch.tensor([0.0, 1.0]), 4, gen()),
    lambda: class_balanced_indices(torch.tensor([[0, 1]]), 4, gen()),
    lambda: class_balanced_indices(torch.tensor([0, 1]), 0, gen()),
    lambda: class_balanced_indices(torch.tensor([0, 1]), 4, None),
    lambda: instance_indices(0, 4, gen()),
    lambda: instance_indices(5, 0, gen()),
    lambda: instance_indices(5, 2.0, gen()),
])
def test_sampler_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


# ---- PIF (a reconstruction) --------------------------------------------------------------------------
def naive_similarity_pif(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    out = torch.zeros_like(features)
    for i in range(features.shape[0]):
        same = [j for j in range(features.shape[0]) if labels[j] == labels[i]]
        fi = features[i] / features[i].norm().clamp_min(1e-12)
        scores = torch.stack([fi @ (features[j] / features[j].norm().clamp_min(1e-12)) / temperature
                              for j in same])
        weights = torch.softmax(scores, dim=0)
        for w, j in zip(weights, same, strict=True):
            out[i] += w * features[j]
    return out


def naive_mean_pif(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([features[labels == labels[i]].mean(dim=0) for i in range(features.shape[0])])


pif_batches = st.tuples(st.integers(1, 9), st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000))
variants = [lambda: SimilarityPIF(0.5), lambda: SimilarityPIF(0.1), MeanPIF]


def make_batch(b: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), torch.randint(0, k, (b,), generator=g)


@pytest.mark.parametrize("make", variants)
@given(pif_batches)
@settings(max_examples=30)
def test_pif_permuting_the_batch_permutes_the_outputs(make, batch):
    b, d, k, seed = batch
    f, y = make_batch(b, d, k, seed)
    pif = make()
    perm = torch.randperm(b, generator=gen(seed + 1))
    torch.testing.assert_close(pif(f[perm], y[perm]), pif(f, y)[perm], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", variants)
@given(pif_batches)
@settings(max_examples=30)
def test_pif_rows_of_different_classes_never_mix(make, batch):
    b, d, k, seed = batch
    f, y = make_batch(b, d, k, seed)
    pif = make()
    changed = f.clone()
    changed[0] = changed[0] * 3.0 + 7.0  # change one row of class y[0]
    other = y != y[0]
    torch.testing.assert_close(pif(changed, y)[other], pif(f, y)[other], rtol=0, atol=0)


@pytest.mark.parametrize("make", variants)
def test_pif_rows_of_the_same_class_do_mix(make):
    f = torch.tensor([[1.0, 0.2, 0.0], [0.0, 1.0, 0.3], [0.9, 0.3, 0.1],
                      [0.1, 1.1, 0.2], [1.1, 0.0, 0.2], [0.2, 0.9, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    changed = f.clone()
    changed[0] = changed[0] + torch.tensor([0.5, -0.3, 0.4], dtype=torch.float64)
    moved = (make()(changed, y) - make()(f, y)).abs().sum(dim=1)
    assert bool((moved[[2, 4]] > 1e-6).all()) and float(moved[[1, 3, 5]].max()) == 0.0


@pytest.mark.parametrize("make", variants)
def test_pif_singletons_pass_through_unchanged(make):
    f, _ = make_batch(6, 4, 1, 3)
    y = torch.tensor([0, 0, 1, 2, 2, 3])  # classes 1 and 3 appear once
    out = make()(f, y)
    torch.testing.assert_close(out[[2, 5]], f[[2, 5]], rtol=0, atol=0)
    assert not torch.allclose(out[[0, 1, 3, 4]], f[[0, 1, 3, 4]])
    all_distinct = torch.arange(6)
    torch.testing.assert_close(make()(f, all_distinct), f, rtol=0, atol=0)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0, 10.0])
@given(pif_batches)
@settings(max_examples=25)
def test_similarity_pif_matches_naive_double_loop(temperature, batch):
    b, d, k, seed = batch
    f, y = make_batch(b, d, k, seed)
    torch.testing.assert_close(SimilarityPIF(temperature)(f, y), naive_similarity_pif(f, y, temperature),
                               rtol=1e-10, atol=1e-10)


@given(pif_batches)
@settings(max_examples=40)
def test_mean_pif_is_the_class_mean(batch):
    b, d, k, seed = batch
    f, y = make_batch(b, d, k, seed)
    torch.testing.assert_close(MeanPIF()(f, y), naive_mean_pif(f, y), rtol=1e-12, atol=1e-12)


def test_similarity_pif_pulls_same_class_features_together_and_is_differentiable():
    f, _ = make_batch(8, 5, 1, 4)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    f.requires_grad_(True)
    out = SimilarityPIF(1.0)(f, y)
    for c in (0, 1):
        rows = y == c
        assert float(out[rows].detach().var(dim=0).sum()) < float(f[rows].detach().var(dim=0).sum())
    out.square().sum().backward()
    assert f.grad is not None and bool(torch.isfinite(f.grad).all()) and float(f.grad.abs().sum()) > 0


def test_pif_registry_build_and_reconstruction_note():
    assert set(PIF_VARIANTS) == {"similarity", "mean"}
    assert PIF_VARIANTS["similarity"] is SimilarityPIF and PIF_VARIANTS["mean"] is MeanPIF
    sim = build_pif("similarity", temperature=0.2)
    assert isinstance(sim, SimilarityPIF) and isinstance(sim, PermutationInvariantFusion) and sim.temperature == 0.2
    assert isinstance(build_pif("mean"), MeanPIF)
    assert PIF_IS_RECONSTRUCTION is True
    assert isinstance(PIF_NOTE, str) and "reconstruction" in PIF_NOTE and PIF_NOTE.count(". ") == 0
    assert "reconstruction" in (SimilarityPIF.__doc__ or "").lower() and "reconstruction" in (MeanPIF.__doc__ or "")
    with pytest.raises(ValueError, match="mean, similarity"):
        build_pif("attention")
    with pytest.raises(ValueError):
        build_pif("mean", temperature=0.1)


@pytest.mark.parametrize("call", [
    lambda: SimilarityPIF(0.0),
    lambda: SimilarityPIF(-1.0),
    lambda: SimilarityPIF(float("inf")),
    lambda: MeanPIF()(torch.zeros(3, 2), torch.tensor([0, 1])),
    lambda: MeanPIF()(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0])),
    lambda: MeanPIF()(torch.zeros(3), torch.tensor([0, 1, 1])),
    lambda: SimilarityPIF()(torch.zeros(3, 2, dtype=torch.long), torch.tensor([0, 1, 1])),
])
def test_pif_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


# ---- H2TConfig ---------------------------------------------------------------------------------------
def test_config_defaults_help_and_frozen():
    c = H2TConfig()
    assert (c.rho, c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.pif, c.pif_temperature) == (
        0.25, 10, 64, 0.01, 0.9, 5e-4, "similarity", 0.1)
    for f in dataclasses.fields(H2TConfig):
        assert f.metadata.get("help"), f.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.rho = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [
    {"rho": -0.1}, {"rho": 1.01}, {"rho": float("nan")}, {"epochs": 0}, {"epochs": 2.0}, {"batch_size": 0},
    {"batch_size": True}, {"lr": 0.0}, {"lr": float("inf")}, {"momentum": 1.0}, {"momentum": -0.1},
    {"weight_decay": -1e-4}, {"pif": "attention"}, {"pif_temperature": 0.0}, {"pif_temperature": float("nan")},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        H2TConfig(**kwargs)


# ---- retrain_classifier ------------------------------------------------------------------------------
class Out(NamedTuple):
    s1: torch.Tensor
    s2: torch.Tensor
    logits: torch.Tensor


class TinyModel(nn.Module):
    """Stand-in for SciLTModel: a trainable `backbone` (must stay untouched), a fusion logit and two heads."""

    def __init__(self, dim: int, k: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.1))
        self.fusion_logit = nn.Parameter(torch.zeros(()))
        self.head1 = nn.Linear(dim, k, bias=False)
        self.head2 = nn.Linear(dim, k, bias=False)
        self.frozen_extra = nn.Parameter(torch.ones(2), requires_grad=False)  # not a backbone parameter
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def output_from_features(self, phi_penult: torch.Tensor, phi_final: torch.Tensor) -> Out:
        self.seen.append((phi_penult.detach().clone(), phi_final.detach().clone()))
        alpha = torch.sigmoid(self.fusion_logit)
        s1 = self.head1(alpha * phi_penult + (1 - alpha) * phi_final)
        s2 = self.head2(phi_penult)
        return Out(s1, s2, s1 + s2)


def ce_both_heads(out, targets):
    return F.cross_entropy(out.s1, targets) + F.cross_entropy(out.s2, targets)


def toy_problem(seed: int = 0, dim: int = 6, k: int = 3):
    """Long-tailed, linearly separable features: class c lives around 3·e_c (60 / 12 / 4 samples)."""
    g = gen(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate((60, 12, 4))])
    centres = 3.0 * torch.eye(k, dim)
    phi_penult = centres[labels] + 0.3 * torch.randn(labels.numel(), dim, generator=g)
    phi_final = 2.0 * phi_penult  # ties the two features together, so a fused pair shows the shared subset
    return phi_penult, phi_final, labels


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_retrain_trains_heads_only_and_reduces_the_loss():
    phi_penult, phi_final, labels = toy_problem()
    model = TinyModel(6, 3)
    before = params_of(model)
    config = H2TConfig(epochs=6, batch_size=16, lr=0.05, rho=0.25)
    history = retrain_classifier(model, phi_penult, phi_final, labels, ce_both_heads, config, seed=0)
    after = params_of(model)
    # backbone untouched, without a gradient, and its requires_grad flag restored
    for name, p in model.named_parameters():
        if name.startswith("backbone."):
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
            assert p.grad is None and p.requires_grad
    # heads and fusion logit moved; a frozen non-backbone parameter stays frozen and unchanged
    for name in ("head1.weight", "head2.weight", "fusion_logit"):
        assert not torch.equal(after[name], before[name]), name
    torch.testing.assert_close(after["frozen_extra"], before["frozen_extra"], rtol=0, atol=0)
    assert not model.frozen_extra.requires_grad
    # history, schedule and learning
    assert [h["epoch"] for h in history] == list(range(1, 7)) and set(history[0]) == {"epoch", "loss", "lr"}
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    lrs = [h["lr"] for h in history]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[0] < 0.05 and lrs[-1] == pytest.approx(0.0)
    assert not model.training
    # steps per epoch = ceil(76 / 16) = 5
    assert len(model.seen) == 6 * 5
    with torch.no_grad():
        acc = (model.output_from_features(phi_penult, phi_final).logits.argmax(1) == labels).double().mean()
    assert float(acc) > 0.9


def test_retrain_same_seed_same_result_and_seed_matters():
    phi_penult, phi_final, labels = toy_problem()
    config = H2TConfig(epochs=2, batch_size=16, lr=0.05)
    runs = []
    for seed in (3, 3, 4):
        model = TinyModel(6, 3)
        history = retrain_classifier(model, phi_penult, phi_final, labels, ce_both_heads, config, seed=seed)
        runs.append((history, params_of(model)))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        torch.testing.assert_close(runs[0][1][name], runs[1][1][name], rtol=0, atol=0)
    assert runs[0][0] != runs[2][0]


def test_retrain_feeds_h2t_fused_pairs_with_one_subset_for_both_features():
    phi_penult, phi_final, labels = toy_problem(dim=8)
    model = TinyModel(8, 3)
    config = H2TConfig(epochs=1, batch_size=10, lr=0.01, rho=0.5)
    targets_seen = []

    def loss_fn(out, targets):
        targets_seen.append(targets.clone())
        return ce_both_heads(out, targets)

    retrain_classifier(model, phi_penult, phi_final, labels, loss_fn, config, seed=7)
    # the documented draw order: balanced batch, instance batch, channels, once per step
    g = gen(7)
    for (phi1, phi2), targets in zip(model.seen, targets_seen, strict=True):
        b = class_balanced_indices(labels, 10, g)
        i = instance_indices(labels.numel(), 10, g)
        ch = h2t_channels(8, 0.5, g)
        torch.testing.assert_close(phi1, naive_fuse(phi_penult[b], phi_penult[i], ch), rtol=0, atol=0)
        torch.testing.assert_close(phi2, naive_fuse(phi_final[b], phi_final[i], ch), rtol=0, atol=0)
        torch.testing.assert_close(targets, labels[b], rtol=0, atol=0)
        torch.testing.assert_close(phi2, 2.0 * phi1, rtol=0, atol=0)  # same subset on both features
    assert len(model.seen) == math.ceil(76 / 10)


def test_retrain_non_finite_loss_raises_and_restores_the_backbone():
    phi_penult, phi_final, labels = toy_problem()
    model = TinyModel(6, 3)
    with pytest.raises(FloatingPointError):
        retrain_classifier(model, phi_penult, phi_final, labels,
                           lambda out, t: out.logits.sum() * float("nan"), H2TConfig(epochs=1), seed=0)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone."))
    assert not model.training


@pytest.mark.parametrize("case", ["shape", "labels_len", "labels_float", "rank", "nan", "config", "seed",
                                  "no_heads", "no_method"])
def test_retrain_bad_inputs(case):
    phi_penult, phi_final, labels = toy_problem()
    model: nn.Module = TinyModel(6, 3)
    config, seed = H2TConfig(epochs=1), 0
    if case == "shape":
        phi_final = phi_final[:, :5]
    elif case == "labels_len":
        labels = labels[:-1]
    elif case == "labels_float":
        labels = labels.float()
    elif case == "rank":
        phi_penult, phi_final = phi_penult[None], phi_final[None]
    elif case == "nan":
        phi_penult = phi_penult.clone()
        phi_penult[0, 0] = float("nan")
    elif case == "config":
        config = {"rho": 0.25}
    elif case == "seed":
        seed = 1.5
    elif case == "no_heads":
        for name, p in model.named_parameters():
            if not name.startswith("backbone."):
                p.requires_grad_(False)
    elif case == "no_method":
        model = nn.Linear(6, 3)
    with pytest.raises(ValueError):
        retrain_classifier(model, phi_penult, phi_final, labels, ce_both_heads, config, seed)
