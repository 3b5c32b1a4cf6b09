"""Embedded long-tailed data sets: exact profiles, balanced disjoint test splits, determinism, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scilt_theory.data import DATASETS, DataConfig, build_dataset, class_groups, longtail_counts
from scilt_theory.data.embedded import TEST_STRIP, cut_patches


def test_longtail_profile_closed_form():
    assert longtail_counts(100, 3, 100.0).tolist() == [100, 10, 1]
    assert longtail_counts(500, 10, 100.0).tolist() == [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    assert longtail_counts(50, 4, 1.0).tolist() == [50, 50, 50, 50]
    counts = longtail_counts(7, 20, 1000.0)
    assert counts.min() == 1 and np.all(np.diff(counts) <= 0)


@pytest.mark.parametrize("counts,groups", [([101, 100, 20, 19], ["many", "medium", "medium", "few"])])
def test_group_boundaries(counts, groups):
    assert class_groups(counts) == groups
    assert class_groups(counts, many_threshold=200, few_threshold=19) == ["medium"] * 4


@pytest.mark.parametrize("name,kwargs", [("synthetic-lt", {"num_classes": 4}), ("digits-lt", {}),
                                         ("scitiles-lt", {"max_per_class": 60, "test_per_class": 10})])
def test_counts_balanced_test_split_and_ranges(name, kwargs):
    cfg = DataConfig(name=name, imbalance=20.0, image_size=16, **kwargs)
    data = build_dataset(cfg)
    n_max = kwargs.get("max_per_class") or int(data.class_counts[0])
    assert data.class_counts.tolist() == longtail_counts(n_max, data.num_classes, 20.0).tolist()
    assert len(set(data.test_counts.tolist())) == 1  # balanced
    for images in (data.train_images, data.test_images):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert data.summary()["imbalance_factor"] == pytest.approx(data.class_counts.max() / data.class_counts.min())


def test_digits_train_and_test_are_disjoint_samples():
    data = build_dataset(DataConfig(name="digits-lt", image_size=8))
    from sklearn.datasets import load_digits

    raw = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).flatten(1)
    index = {tuple(row.tolist()): i for i, row in enumerate(raw)}

    def ids(images):
        return {index.get(tuple(img[0].flatten().tolist())) for img in images}

    train_ids, test_ids = ids(data.train_images), ids(data.test_images)
    assert None not in train_ids and None not in test_ids  # 8 px: exact copies of the source images
    assert train_ids.isdisjoint(test_ids)


def test_scitiles_test_patches_come_from_the_held_out_strip():
    rng = np.random.default_rng(0)
    image = rng.random((100, 200)).astype(np.float32)
    split = int(round(200 * (1 - TEST_STRIP)))
    _, origins = cut_patches(image, 30, 24, (split, 200), 16, rng)
    assert origins[:, 1].min() >= split and (origins[:, 1] + 24).max() <= 200
    _, origins = cut_patches(image, 30, 24, (0, split), 16, rng)
    assert (origins[:, 1] + 24).max() <= split


def test_determinism_and_seed_dependence():
    cfg = DataConfig(name="scitiles-lt", max_per_class=40, test_per_class=5, image_size=16)
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    c = build_dataset(DataConfig(name="scitiles-lt", max_per_class=40, test_per_class=5, image_size=16, seed=1))
    assert not torch.equal(a.train_images, c.train_images)


@pytest.mark.parametrize("kwargs", [{"imbalance": 0.5}, {"image_size": 4}, {"max_per_class": 0},
                                    {"test_per_class": 0}, {"num_classes": 1},
                                    {"few_threshold": 200, "many_threshold": 100}])
def test_bad_config_values_are_refused(kwargs):
    with pytest.raises(ValueError):
        DataConfig(**kwargs)


def test_unknown_name_and_too_large_head_are_refused():
    with pytest.raises(ValueError, match="unknown data set"):
        build_dataset(DataConfig(name="nope"))
    with pytest.raises(ValueError, match="at most"):
        build_dataset(DataConfig(name="digits-lt", max_per_class=1000, image_size=8))
    assert set(DATASETS) >= {"scitiles-lt", "digits-lt", "synthetic-lt"}
