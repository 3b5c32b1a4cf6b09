"""Embedded long-tailed data sets: exact profiles, balanced disjoint test splits, determinism, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from scilt_theory.data import (
    DATASETS,
    DataConfig,
    LongTailDataset,
    build_dataset,
    class_groups,
    head_first_order,
    longtail_counts,
    make_loader,
    normalize,
    register_dataset,
)
from scilt_theory.data.scitiles import (
    BLOCK_SIZE,
    MIN_PATCH_STD,
    PATCH_SIZE,
    SCITILES_SOURCES,
    assign_blocks,
    block_grid,
    cut_patches,
    load_source,
    num_test_blocks,
    orient,
)

SMALL = {"synthetic-lt": {"num_classes": 4}, "digits-lt": {},
         "scitiles-lt": {"max_per_class": 60, "test_per_class": 10}}


def small(name: str, **kwargs) -> DataConfig:
    return DataConfig(name=name, imbalance=20.0, image_size=16, **{**SMALL[name], **kwargs})


# --- the long-tail profile and the groups ------------------------------------------------------------------------

def test_longtail_profile_closed_form():
    assert longtail_counts(100, 3, 100.0).tolist() == [100, 10, 1]
    assert longtail_counts(500, 10, 100.0).tolist() == [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    assert longtail_counts(500, 9, 100.0).tolist() == [500, 281, 158, 88, 50, 28, 15, 8, 5]
    assert longtail_counts(144, 10, 100.0).tolist() == [144, 86, 51, 31, 18, 11, 6, 4, 2, 1]
    assert longtail_counts(50, 4, 1.0).tolist() == [50, 50, 50, 50]
    assert longtail_counts(7, 1, 10.0).tolist() == [7]
    assert longtail_counts(7, 20, 1000.0).min() == 1  # the floor of 0.007 is lifted to one image


@given(st.integers(1, 5000), st.integers(2, 60), st.floats(1.0, 1e4))
def test_longtail_counts_are_the_floor_of_the_exponential_profile(n_max, k, imbalance):
    counts = longtail_counts(n_max, k, imbalance)
    assert counts.dtype == np.int64 and counts.shape == (k,) and counts[0] == n_max
    assert np.all(np.diff(counts) <= 0) and counts.min() >= 1
    for c, n in enumerate(counts.tolist()):  # floor definition: n ≤ ideal < n + 1 (or the lift to 1)
        ideal = n_max * imbalance ** (-c / (k - 1))
        assert n - 1e-6 <= max(ideal, 1.0) < n + 1


@pytest.mark.parametrize("args", [(0, 3, 10.0), (10, 0, 10.0), (10, 3, 0.5), (10, 3, float("nan")),
                                  (10, 3, float("inf")), (2.5, 3, 10.0)])
def test_longtail_counts_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        longtail_counts(*args)


def test_group_boundaries():
    assert class_groups([101, 100, 20, 19, 0]) == ["many", "medium", "medium", "few", "few"]
    assert class_groups([101, 100, 20, 19], many_threshold=200, few_threshold=19) == ["medium"] * 4
    assert class_groups([11, 10, 3, 2], many_threshold=10, few_threshold=3) == ["many", "medium", "medium", "few"]
    with pytest.raises(ValueError, match="few_threshold"):
        class_groups([5], many_threshold=10, few_threshold=11)
    with pytest.raises(ValueError, match="non-negative"):
        class_groups([5, -1])


def test_dataset_groups_follow_the_configured_thresholds():
    data = build_dataset(DataConfig(name="synthetic-lt", max_per_class=200, imbalance=100.0, num_classes=5,
                                    image_size=8))
    assert data.class_counts.tolist() == [200, 63, 20, 6, 2]
    assert data.groups == ["many", "medium", "medium", "few", "few"]
    other = build_dataset(DataConfig(name="synthetic-lt", max_per_class=200, imbalance=100.0, num_classes=5,
                                     image_size=8, many_threshold=62, few_threshold=21))
    assert other.groups == ["many", "many", "few", "few", "few"]


# --- every data set: exact profile, balanced test split, tensors ---------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_counts_balanced_test_split_and_tensors(name):
    data = build_dataset(small(name))
    n_max = SMALL[name].get("max_per_class") or int(data.class_counts[0])
    assert data.class_counts.tolist() == longtail_counts(n_max, data.num_classes, 20.0).tolist()
    assert len(set(data.test_counts.tolist())) == 1  # balanced
    for images, labels in ((data.train_images, data.train_labels), (data.test_images, data.test_labels)):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)
        assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])  # grey × 3
    summary = data.summary()
    json.dumps(summary)  # JSON-friendly
    assert summary["train_counts"] == data.class_counts.tolist() and summary["seed"] == 0
    assert summary["imbalance_factor"] == pytest.approx(data.class_counts.max() / data.class_counts.min())
    assert sum(summary["group_sizes"].values()) == data.num_classes == len(data.class_names)


def test_default_sizes():
    population = build_dataset(DataConfig())  # the embedded default: the stated law of scitiles-pop
    assert population.name == "scitiles-pop" and population.class_names == SCITILES_SOURCES
    assert population.class_counts.tolist() == [500, 281, 158, 88, 50, 28, 15, 8, 5]
    assert population.test_counts.tolist() == [500] * 9 and population.train_images.shape[1:] == (3, 32, 32)
    assert population.groups == ["many"] * 3 + ["medium"] * 3 + ["few"] * 3
    tiles = build_dataset(DataConfig(name="scitiles-lt"))
    assert tiles.class_counts.tolist() == [500, 281, 158, 88, 50, 28, 15, 8, 5]
    assert tiles.test_counts.tolist() == [50] * 9
    digits = build_dataset(DataConfig(name="digits-lt", image_size=8))
    assert digits.class_counts.tolist() == longtail_counts(144, 10, 100.0).tolist()
    assert digits.test_counts.tolist() == [30] * 10


# --- no leakage ----------------------------------------------------------------------------------------------------

def test_digits_train_and_test_are_disjoint_samples():
    data = build_dataset(DataConfig(name="digits-lt", image_size=8))
    from sklearn.datasets import load_digits

    source = load_digits()
    train_index, test_index = data.provenance["train_index"], data.provenance["test_index"]
    assert np.intersect1d(train_index, test_index).size == 0
    assert len(set(train_index.tolist())) == len(train_index) and len(set(test_index.tolist())) == len(test_index)
    assert np.array_equal(source.target[train_index], data.train_labels.numpy())
    # an independent check of the bookkeeping: at 8 px the images are the source images themselves
    raw = torch.from_numpy(source.images.astype(np.float32) / 16.0)
    assert torch.equal(data.train_images[:, 0], raw[torch.from_numpy(train_index)])
    assert torch.equal(data.test_images[:, 0], raw[torch.from_numpy(test_index)])


def covered(crops: np.ndarray, shape: tuple[int, int], patch: int = PATCH_SIZE) -> np.ndarray:
    """bool mask of the source pixels that any of ``crops`` (row, column, …) covers."""
    mask = np.zeros(shape, dtype=bool)
    for y, x in crops[:, :2].tolist():
        mask[y:y + patch, x:x + patch] = True
    return mask


def test_scitiles_crops_lie_in_blocks_of_their_split_and_share_no_pixel():
    data = build_dataset(DataConfig(name="scitiles-lt", max_per_class=200, test_per_class=40, imbalance=4.0,
                                    image_size=16))
    prov = data.provenance
    patch, block = prov["patch_size"], prov["block_size"]
    assert (patch, block) == (PATCH_SIZE, BLOCK_SIZE) == (48, 96)
    origins, is_test = prov["block_origins"], prov["block_is_test"]
    assert len(np.unique(origins, axis=0)) == len(origins)  # block ids are unique across classes
    assert torch.equal(data.train_groups, torch.from_numpy(prov["train_blocks"]))
    for c, name in enumerate(data.class_names):
        shape = load_source(name).shape
        for split in ("train", "test"):
            mine = getattr(data, f"{split}_labels").numpy() == c
            crops, blocks = prov[f"{split}_crops"][mine], prov[f"{split}_blocks"][mine]
            assert np.all(origins[blocks, 0] == c) and np.all(is_test[blocks] == (split == "test"))
            y0, x0 = origins[blocks, 1], origins[blocks, 2]  # every crop lies wholly inside its block
            assert np.all(crops[:, 0] >= y0) and np.all(crops[:, 0] + patch <= y0 + block)
            assert np.all(crops[:, 1] >= x0) and np.all(crops[:, 1] + patch <= x0 + block)
            assert len({tuple(row) for row in crops.tolist()}) == len(crops)  # every crop drawn once
        train = covered(prov["train_crops"][data.train_labels.numpy() == c], shape)
        test = covered(prov["test_crops"][data.test_labels.numpy() == c], shape)
        assert train.any() and test.any() and not (train & test).any(), name  # no pixel in both splits
    # the recorded crops are the pixels: re-cut a few from the source and compare
    source = load_source(data.class_names[1])
    labels = data.test_labels.numpy()
    for i in np.flatnonzero(labels == 1)[:3]:
        y, x, k, flip = prov["test_crops"][i]
        crop = torch.from_numpy(orient(source[y:y + patch, x:x + patch], k, flip))[None, None]
        expected = F.interpolate(crop, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
        assert torch.allclose(data.test_images[i, 0], expected[0, 0].clamp(0, 1))


def test_scitiles_block_layout_per_class():
    data = build_dataset(DataConfig(name="scitiles-lt", max_per_class=20, test_per_class=2, imbalance=4.0,
                                    image_size=8))
    blocks = [len(block_grid(load_source(name).shape)) for name in SCITILES_SOURCES]
    assert blocks == [90, 30, 25, 196, 25, 12, 25, 25, 25]  # coins (303 x 384) is the smallest: 3 x 4 blocks
    tests = [num_test_blocks(b) for b in blocks]
    assert tests == [22, 7, 6, 49, 6, 3, 6, 6, 6]  # ⌊25 %⌋, at least one each side
    assert data.provenance["blocks_per_class"] == [[b - t, t] for b, t in zip(blocks, tests)]
    assert num_test_blocks(2) == 1 and num_test_blocks(3) == 1 and num_test_blocks(8) == 2
    grid = block_grid((303, 384))
    assert grid.tolist() == [[7 + 96 * r, 96 * c] for r in range(3) for c in range(4)]  # centred, row-major
    with pytest.raises(ValueError, match="a training and a test block"):
        block_grid((100, 150))


def test_scitiles_block_assignment_is_a_seeded_permutation_fixed_before_the_crops():
    def assignment(**kwargs):
        return build_dataset(DataConfig(name="scitiles-lt", image_size=8, **kwargs)).provenance["block_is_test"]

    base = assignment(max_per_class=20, test_per_class=2, imbalance=4.0)
    assert np.array_equal(base, assignment(max_per_class=20, test_per_class=2, imbalance=4.0))  # same seed
    # it depends on the seed and the class only, not on the sizes asked for
    assert np.array_equal(base, assignment(max_per_class=300, test_per_class=30, imbalance=50.0))
    other = assignment(max_per_class=20, test_per_class=2, imbalance=4.0, seed=1)
    assert not np.array_equal(base, other)
    # it is the permutation rule itself: the first ⌊B/4⌋ of np.random.default_rng([seed, 0, c]).permutation(B)
    origins = build_dataset(DataConfig(name="scitiles-lt", max_per_class=20, test_per_class=2, imbalance=4.0,
                                       image_size=8, seed=1)).provenance["block_origins"]
    for c in range(len(SCITILES_SOURCES)):
        mine = origins[:, 0] == c
        expected = assign_blocks(int(mine.sum()), np.random.default_rng([1, 0, c]))
        assert np.array_equal(other[mine], expected)
        assert other[mine].sum() == num_test_blocks(int(mine.sum()))
    for seed in range(2, 6):  # other seeds, other splits; each class's count of test blocks stays
        again = assignment(max_per_class=20, test_per_class=2, imbalance=4.0, seed=seed)
        assert not np.array_equal(base, again) and again.sum() == base.sum()


def test_scitiles_test_set_is_fixed_and_training_sets_are_nested_across_sizes():
    small = build_dataset(DataConfig(name="scitiles-lt", max_per_class=40, imbalance=10.0, image_size=8))
    large = build_dataset(DataConfig(name="scitiles-lt", max_per_class=160, imbalance=10.0, image_size=8))
    assert torch.equal(small.test_images, large.test_images)  # the same test set for every training size
    for c in range(small.num_classes):
        a = small.provenance["train_crops"][small.train_labels.numpy() == c]
        b = large.provenance["train_crops"][large.train_labels.numpy() == c]
        assert np.array_equal(a, b[:len(a)])  # the smaller profile is a prefix of the larger, class by class


def test_scitiles_supports_a_head_of_4000_patches():
    data = build_dataset(DataConfig(name="scitiles-lt", max_per_class=4000, imbalance=100.0, image_size=8))
    assert data.class_counts.tolist() == longtail_counts(4000, 9, 100.0).tolist() == [4000, 2249, 1264, 711, 400,
                                                                                       224, 126, 71, 40]
    assert data.test_counts.tolist() == [50] * 9 and data.train_groups.shape == (9085,)
    prov = data.provenance
    for c, name in enumerate(data.class_names[:2]):  # the largest classes: the most crops per block
        shape = load_source(name).shape
        train = covered(prov["train_crops"][data.train_labels.numpy() == c], shape)
        test = covered(prov["test_crops"][data.test_labels.numpy() == c], shape)
        assert not (train & test).any()


def test_cut_patches_stays_inside_its_blocks():
    rng = np.random.default_rng(0)
    image = rng.random((100, 200)).astype(np.float32)
    blocks = np.array([[0, 0], [50, 150]])
    images, crops, which = cut_patches(image, 60, blocks, 16, np.random.default_rng(1), patch=24, block=50)
    assert images.shape == (60, 3, 16, 16) and set(which.tolist()) == {0, 1}
    assert np.all(crops[:, 0] >= blocks[which, 0]) and np.all(crops[:, 0] + 24 <= blocks[which, 0] + 50)
    assert np.all(crops[:, 1] >= blocks[which, 1]) and np.all(crops[:, 1] + 24 <= blocks[which, 1] + 50)
    out = torch.zeros(60, 3, 16, 16)
    again, _, _ = cut_patches(image, 60, blocks, 16, np.random.default_rng(1), patch=24, block=50, out=out)
    assert again is out and torch.equal(out, images)  # written into the given tensor
    with pytest.raises(ValueError, match="cannot hold"):
        cut_patches(image, 3, np.array([[60, 160]]), 16, rng, patch=24, block=50)  # runs off the image
    with pytest.raises(ValueError, match="cannot hold"):
        cut_patches(image, 3, np.array([[0, 0]]), 16, rng, patch=24, block=20)  # a crop larger than its block


def test_cut_patches_draws_distinct_textured_crops():
    rng = np.random.default_rng(0)
    image = rng.random((30, 30)).astype(np.float32)
    block = np.array([[0, 0]])
    _, crops, _ = cut_patches(image, 300, block, 8, rng, patch=24, block=30)  # 7 × 7 origins × 8 orientations
    assert len({tuple(row) for row in crops.tolist()}) == 300
    with pytest.raises(ValueError, match="distinct textured"):
        cut_patches(image, 393, block, 8, rng, patch=24, block=30)
    image[:, :20] = 0.5  # flat left part: crops lying wholly in it are redrawn
    _, crops, _ = cut_patches(image, 50, block, 8, rng, patch=10, block=30)
    assert all(image[y:y + 10, x:x + 10].std() >= MIN_PATCH_STD for y, x, _, _ in crops.tolist())
    assert crops[:, 1].max() > 10


def test_every_scitiles_source_is_bundled_and_holds_blocks_of_both_splits():
    for name in SCITILES_SOURCES:
        image = load_source(name)  # offline: pooch is not even installed
        assert image.dtype == np.float32 and image.ndim == 2 and 0 <= image.min() and image.max() <= 1
        assert len(block_grid(image.shape)) >= 12 and BLOCK_SIZE >= 2 * PATCH_SIZE


# --- determinism ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_determinism_and_seed_dependence(name):
    a, b = build_dataset(small(name)), build_dataset(small(name))
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    c = build_dataset(small(name, seed=1))
    assert not torch.equal(a.train_images, c.train_images)
    assert c.class_counts.tolist() == a.class_counts.tolist()  # the seed moves samples, not the profile


# --- validation ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"imbalance": 0.5}, {"imbalance": float("nan")}, {"imbalance": float("inf")},
                                    {"image_size": 4}, {"image_size": 16.5}, {"max_per_class": 0},
                                    {"test_per_class": 0}, {"num_classes": 1}, {"seed": -1}, {"name": ""},
                                    {"few_threshold": 200, "many_threshold": 100}, {"few_threshold": -1},
                                    {"max_per_class": True}])
def test_bad_config_values_are_refused(kwargs):
    with pytest.raises(ValueError):
        DataConfig(**kwargs)


@pytest.mark.parametrize("kwargs,accepts", [
    ({"imbalance": 0.5}, "a number >= 1"),
    ({"image_size": 4}, "an integer in [8, 1024]"),
    ({"max_per_class": True}, "an integer >= 1"),
    ({"num_classes": 1}, "an integer >= 2"),
    ({"name": ""}, "a non-empty string"),
    ({"profile": "zipf"}, "one of 'exponential', 'natural'"),
    ({"test_split": "half"}, "one of 'balanced', 'natural'"),
    ({"test_fraction": 1.0}, "a number in (0, 1)"),
    ({"crop_pct": 0.0}, "a number in [0.1, 1]"),
    ({"data_root": 3}, "a non-empty string"),
    ({"exclude_classes": ("",)}, "a tuple of non-empty string values"),
])
def test_config_refusals_name_the_field_and_what_it_accepts(kwargs, accepts):
    from dataclasses import fields

    from scilt_theory.constraints import constraint_of

    (key, value), = kwargs.items()
    constraint = constraint_of(next(f for f in fields(DataConfig) if f.name == key))
    with pytest.raises(ValueError) as info:
        DataConfig(**kwargs)
    assert str(info.value) == f"{key} must be {constraint.describe()}, got {value!r}"
    assert accepts in str(info.value)


def test_the_check_that_combines_fields_keeps_its_own_sentence():
    with pytest.raises(ValueError) as info:
        DataConfig(few_threshold=200)
    assert str(info.value) == ("the Many/Few thresholds need 0 <= few <= many, got few_threshold 200 and "
                               "many_threshold 100")


def test_config_constraints_are_declared_on_every_field():
    from dataclasses import fields

    from scilt_theory.constraints import constraint_of

    assert all(constraint_of(f) is not None for f in fields(DataConfig))
    # normalisations still apply before the check: a path becomes text, a list (JSON) or one name a tuple
    from pathlib import Path

    config = DataConfig(data_root=Path("/data/x"), exclude_classes=["a", "b"])
    assert config.data_root == "/data/x" and config.exclude_classes == ("a", "b")
    assert DataConfig(exclude_classes="No Finding").exclude_classes == ("No Finding",)


def test_config_accepts_numpy_numbers_and_has_help():
    from dataclasses import fields

    DataConfig(imbalance=np.float64(10.0), max_per_class=np.int64(50), seed=np.int64(3))
    assert all(f.metadata.get("help") for f in fields(DataConfig))


@pytest.mark.parametrize("config,match", [
    (DataConfig(name="nope"), "unknown data set"),
    (DataConfig(name="digits-lt", max_per_class=1000, image_size=8), "at most 144"),
    (DataConfig(name="digits-lt", test_per_class=200, image_size=8), "hold out at most"),
    (DataConfig(name="digits-lt", num_classes=11, image_size=8), "10 classes"),
    (DataConfig(name="scitiles-lt", num_classes=10, image_size=8), "9 classes"),
    (DataConfig(name="scitiles-lt", max_per_class=10**6, image_size=8), "at most"),
])
def test_impossible_requests_are_refused(config, match):
    with pytest.raises(ValueError, match=match):
        build_dataset(config)


def _tiny(train_labels, **overrides) -> dict:
    labels = torch.tensor(train_labels, dtype=torch.int64)
    fields = dict(name="tiny", class_names=("a", "b"), train_images=torch.zeros(len(labels), 3, 8, 8),
                  train_labels=labels, test_images=torch.zeros(2, 3, 8, 8),
                  test_labels=torch.tensor([0, 1]), config=DataConfig(name="tiny"))
    return {**fields, **overrides}


@pytest.mark.parametrize("labels,overrides,match", [
    ([0, 1, 1], {}, "ordered by training count"),
    ([0, 0], {}, "needs a training image"),
    ([0, 1], {"train_images": torch.full((2, 3, 8, 8), 2.0)}, r"\[0, 1\]"),
    ([0, 1], {"train_images": torch.zeros(2, 1, 8, 8)}, "float32"),
    ([0, 1], {"test_images": torch.zeros(2, 3, 8, 8, dtype=torch.float64)}, "float32"),
    ([0, 1], {"test_labels": torch.tensor([0, 2])}, "must lie in"),
    ([0, 1], {"test_labels": torch.tensor([0, 1], dtype=torch.int32)}, "int64"),
    ([0, 1], {"test_images": torch.zeros(2, 3, 4, 4)}, "differ in shape"),
])
def test_dataset_contract_is_checked(labels, overrides, match):
    with pytest.raises(ValueError, match=match):
        LongTailDataset(**_tiny(labels, **overrides))
    LongTailDataset(**_tiny([0, 0, 1]))  # the valid baseline passes


def test_head_first_order_relabels_to_the_contract():
    counts = np.array([3, 9, 3, 5])
    order = head_first_order(counts)
    assert order.tolist() == [1, 3, 0, 2]  # ties keep their source order
    relabel = np.argsort(order)
    labels = np.repeat(np.arange(4), counts)
    assert np.bincount(relabel[labels]).tolist() == [9, 5, 3, 3]


def test_register_dataset(monkeypatch):
    monkeypatch.setattr("scilt_theory.data.registry.DATASETS", dict(DATASETS))
    from scilt_theory.data import registry

    def build_tiny(config: DataConfig) -> LongTailDataset:
        return LongTailDataset(**{**_tiny([0, 0, 1]), "config": config})

    spec = registry.register_dataset("tiny-lt", build_tiny, reads_files=False)
    assert isinstance(spec, registry.DatasetSpec) and registry.DATASETS["tiny-lt"] is spec
    assert registry.build_dataset(DataConfig(name="tiny-lt")).class_counts.tolist() == [2, 1]
    with pytest.raises(ValueError, match="already registered"):
        registry.register_dataset("tiny-lt", build_tiny, reads_files=False)
    with pytest.raises(ValueError, match="reads_files=True .* or reads_files=False"):
        registry.register_dataset("vague-lt", build_tiny)  # it does not say whether it reads files
    assert "vague-lt" not in registry.DATASETS
    registry.register_dataset("broken-lt", lambda config: "not a data set", reads_files=False)
    with pytest.raises(ValueError, match="not a LongTailDataset"):
        registry.build_dataset(DataConfig(name="broken-lt"))
    assert register_dataset is registry.register_dataset


# --- loaders and normalisation -------------------------------------------------------------------------------------

def test_make_loader_order_depends_only_on_its_seed():
    images, labels = torch.arange(40, dtype=torch.float32).reshape(10, 1, 2, 2), torch.arange(10)

    def order(seed, **kwargs):
        return torch.cat([y for _, y in make_loader(images, labels, 3, True, seed, **kwargs)]).tolist()

    torch.manual_seed(123)
    first = order(5)
    torch.manual_seed(999)  # global state must not matter
    assert order(5) == first and sorted(first) == list(range(10))
    assert order(6) != first
    assert [len(y) for _, y in make_loader(images, labels, 3, True, 5, drop_last=True)] == [3, 3, 3]
    assert torch.cat([y for _, y in make_loader(images, labels, 4, False, 0)]).tolist() == list(range(10))
    with pytest.raises(ValueError, match="differ in length"):
        make_loader(images, labels[:5], 3, True, 0)


def test_normalize_matches_torchvision():
    from torchvision.transforms.functional import normalize as tv_normalize

    images = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    assert torch.allclose(normalize(images, mean, std), tv_normalize(images, mean, std))
    assert torch.allclose(normalize(images[0], mean, std), tv_normalize(images[0], mean, std))
    assert float(images.min()) >= 0  # the input is left alone
    with pytest.raises(ValueError, match="one mean and std per channel"):
        normalize(images, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="positive"):
        normalize(images, mean, (0.2, 0.0, 0.2))


def test_data_config_round_trips_through_a_dict():
    from dataclasses import asdict

    config = DataConfig(name="digits-lt", imbalance=10.0, seed=4, num_classes=6)
    assert DataConfig(**asdict(config)) == config
    assert math.isclose(build_dataset(DataConfig(**asdict(config))).summary()["config"]["imbalance"], 10.0)
