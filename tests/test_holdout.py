"""The hold-out of training images (scilt_theory/data/holdout.py): bit-identical to the first release without
groups, whole groups and exact counts with them, and no scitiles pixel shared between the fitted and the held-out
part."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from scilt_theory.data import DataConfig, build_dataset, holdout_parts, holdout_split
from scilt_theory.data.scitiles import PATCH_SIZE, load_source


def old_holdout_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The function scilt_theory/training.py had before groups (verbatim): the oracle recorded runs rely on."""
    generator = torch.Generator().manual_seed(seed + 7919)
    fit, held = [], []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero(as_tuple=True)[0]
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        k = min(int(fraction * idx.numel()), idx.numel() - 1)
        held.append(idx[:k])
        fit.append(idx[k:])
    return torch.sort(torch.cat(fit)).values, torch.sort(torch.cat(held)).values


labels_st = st.lists(st.integers(0, 5), min_size=1, max_size=300).map(lambda v: torch.tensor(v, dtype=torch.int64))
fractions = st.one_of(st.sampled_from([0.0, 0.2, 0.3, 0.5, 0.99]), st.floats(0, 0.999))


@given(labels_st, fractions, st.integers(0, 10**6))
def test_without_groups_it_is_bit_identical_to_the_old_function(labels, fraction, seed):
    expected = old_holdout_split(labels, fraction, seed)
    for got in (holdout_split(labels, fraction, seed), holdout_split(labels, fraction, seed, None),
                holdout_split(labels, fraction, seed, torch.arange(len(labels)))):  # singleton groups: the same
        assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(got, expected))
    assert holdout_parts(labels, fraction, seed).dropped.numel() == 0


def test_the_re_export_in_training_is_the_data_package_function():
    from scilt_theory.training import holdout_split as from_training

    assert from_training is holdout_split


@st.composite
def grouped(draw):
    """Labels and groups that lie within a class (ids unique across classes, sizes 1 to 12)."""
    labels, groups, next_id = [], [], 0
    for c in range(draw(st.integers(1, 5))):
        for size in draw(st.lists(st.integers(1, 12), min_size=1, max_size=10)):
            labels += [c] * size
            groups += [next_id] * size
            next_id += 1
    order = draw(st.permutations(range(len(labels))))  # images of a group need not be adjacent
    return (torch.tensor(labels)[list(order)], torch.tensor(groups)[list(order)] * 3 + 5)


@given(grouped(), fractions, st.integers(0, 10**6))
def test_groups_stay_whole_and_counts_are_exact(data, fraction, seed):
    labels, groups = data
    parts = holdout_parts(labels, fraction, seed, groups)
    everything = torch.sort(torch.cat(list(parts))).values
    assert torch.equal(everything, torch.arange(len(labels)))  # a partition of the training split
    fit_groups, held_groups = set(groups[parts.fit].tolist()), set(groups[parts.held].tolist())
    dropped_groups = set(groups[parts.dropped].tolist())
    assert not fit_groups & held_groups and not fit_groups & dropped_groups  # no group feeds both parts
    for c in torch.unique(labels).tolist():
        mine = labels == c
        n = int(mine.sum())
        k = min(int(fraction * n), n - 1)
        sizes = torch.bincount(groups[mine]).tolist()
        held = int(mine[parts.held].sum())
        assert int(mine[parts.fit].sum()) >= 1  # at least one image of every class stays for fitting
        assert held <= k
        if n - max(sizes) >= k:  # the other groups can supply k whatever the permutation keeps last
            assert held == k
        # at most one group of the class is split, and only a split group drops images
        split = {g for g in groups[parts.dropped][labels[parts.dropped] == c].tolist()}
        assert len(split) <= 1 and split <= set(groups[parts.held].tolist())
    again = holdout_parts(labels, fraction, seed, groups)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))  # seeded


def test_groups_are_permuted_with_the_seed():
    labels = torch.zeros(200, dtype=torch.int64)
    groups = torch.arange(200) // 4  # 50 groups of 4
    held = {holdout_split(labels, 0.3, seed, groups)[1].tolist().__str__() for seed in range(5)}
    assert len(held) == 5
    fit, held0 = holdout_split(labels, 0.3, 0, groups)
    assert len(held0) == 60 and len(fit) == 140  # 15 whole groups; nothing dropped when groups fit exactly


def test_a_partly_needed_group_is_dropped_from_both_parts():
    labels = torch.zeros(10, dtype=torch.int64)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])  # sizes 4, 4, 2; k = 5 is no sum of whole groups
    seen = set()
    for seed in range(20):
        parts = holdout_parts(labels, 0.5, seed, groups)
        assert len(parts.held) == 5 and len(parts.dropped) in (1, 3)  # 4 + 1 of a 4 or of the 2, or 2 + 3 of a 4
        fit_groups = set(groups[parts.fit].tolist())
        assert len(fit_groups) == 1 and not fit_groups & set(groups[parts.held].tolist())  # the last group
        seen.add(len(parts.dropped))
    assert seen == {1, 3}
    one_group = holdout_parts(torch.zeros(6, dtype=torch.int64), 0.5, 0, torch.zeros(6, dtype=torch.int64))
    assert len(one_group.fit) == 6 and len(one_group.held) == 0  # a class of one group is never held out


def test_bad_groups_are_refused():
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="more than one class"):
        holdout_split(labels, 0.5, 0, torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="one integer group id per label"):
        holdout_split(labels, 0.5, 0, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="one integer group id per label"):
        holdout_split(labels, 0.5, 0, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        holdout_split(labels, 1.0, 0)


def _covered(crops: np.ndarray, shape) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for y, x in crops[:, :2].tolist():
        mask[y:y + PATCH_SIZE, x:x + PATCH_SIZE] = True
    return mask


def test_scitiles_hold_out_of_the_demo_config_shares_no_pixel_with_the_fitted_part():
    # the legacy block split at the demo's sizes: 9 classes, n_max 500, imbalance 100
    data = build_dataset(DataConfig(name="scitiles-lt"))
    parts = holdout_parts(data.train_labels, 0.3, 0, data.train_groups)
    labels, crops = data.train_labels.numpy(), data.provenance["train_crops"]
    held = np.bincount(labels[parts.held.numpy()], minlength=9)
    assert held.tolist() == [150, 84, 47, 26, 15, 8, 4, 2, 1]  # exactly ⌊0.3 · n_c⌋ of every class
    dropped = np.bincount(labels[parts.dropped.numpy()], minlength=9)
    fit = np.bincount(labels[parts.fit.numpy()], minlength=9)
    assert np.array_equal(held + dropped + fit, data.class_counts) and fit.min() >= 1
    for c, name in enumerate(data.class_names):
        shape = load_source(name).shape
        in_c = labels == c
        fit_mask = _covered(crops[np.intersect1d(np.flatnonzero(in_c), parts.fit.numpy())], shape)
        held_mask = _covered(crops[np.intersect1d(np.flatnonzero(in_c), parts.held.numpy())], shape)
        test_mask = _covered(data.provenance["test_crops"][data.test_labels.numpy() == c], shape)
        assert not (fit_mask & held_mask).any() and not (test_mask & (fit_mask | held_mask)).any(), name
        blocks = data.train_groups.numpy()
        # whatever a held-out block lost to the drop, it lost only that: none of its crops were fitted on
        assert not set(blocks[parts.dropped.numpy()]) & set(blocks[parts.fit.numpy()])


def test_training_holds_out_whole_blocks_and_records_them(tmp_path):
    from scilt_theory.checkpoint import load_run
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig, train

    data = DataConfig(name="scitiles-lt", max_per_class=40, test_per_class=4, imbalance=8.0, num_classes=4,
                      image_size=16)
    model = ModelConfig(num_classes=4, img_size=16, patch_size=4, depth=2, adapter="full")
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, warmup_epochs=0, out=str(tmp_path),
                         quiet=True, holdout_fraction=0.3)
    result = train(data, model, config)
    record = load_run(result.run_path)
    built = result.data
    fit, held = holdout_split(built.train_labels, 0.3, 0, built.train_groups)
    assert record["holdout_indices"] == held.tolist()
    assert record["fit_counts"] == torch.bincount(built.train_labels[fit], minlength=4).tolist()
    blocks = built.train_groups
    assert not set(blocks[held].tolist()) & set(blocks[fit].tolist())
