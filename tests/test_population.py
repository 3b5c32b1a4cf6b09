"""scitiles-pop is a stated law (scilt_theory/data/population.py, THEORY §0): every split is an i.i.d. draw of it.

Checked here: the train, hold-out, validation and test samplers of a class have one law (a two-sample test on crop
statistics that the old block split of scitiles-lt fails), seeds reproduce, smaller training profiles are prefixes,
the shift split shares no pixel with the population region, and the acquisition noise has the moments of the
Poisson–Gaussian model (an exact oracle, with power against a wrong photon count or read noise).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from scilt_theory.data import DataConfig, build_dataset, holdout_parts
from scilt_theory.data.population import (
    SCITILES_SOURCES,
    SHIFT_FRACTION,
    CropLaw,
    add_acquisition_noise,
    law_of,
    regions,
    sample_split,
)
from scilt_theory.data.scitiles import load_source

CELL = SCITILES_SOURCES.index("cell")


def _crop_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    grey = images[:, 0].flatten(1).double()
    return grey.mean(1).numpy(), grey.std(1).numpy()


def _one_class(split: str, n: int, seed: int = 0, c: int = CELL, **law) -> torch.Tensor:
    per_class = [0] * (c + 1)
    per_class[c] = n
    images, labels, _ = sample_split(DataConfig(image_size=16, seed=seed, **law), split, per_class)
    assert (labels == c).all()
    return images


def _ks_pvalue(a: torch.Tensor, b: torch.Tensor) -> float:
    """The smaller KS p-value of the per-crop mean and standard deviation of two samples of crops."""
    (mean_a, std_a), (mean_b, std_b) = _crop_stats(a), _crop_stats(b)
    return min(stats.ks_2samp(mean_a, mean_b).pvalue, stats.ks_2samp(std_a, std_b).pvalue)


@pytest.mark.parametrize("other", ["test", "validation"])
def test_train_and_other_samplers_of_a_class_have_one_law(other):
    assert _ks_pvalue(_one_class("train", 400), _one_class(other, 400)) > 0.01


def test_the_two_sample_test_has_power_the_old_block_split_fails_it_and_so_does_the_shift_region():
    old = build_dataset(DataConfig(name="scitiles-lt", image_size=16, max_per_class=700, test_per_class=400))
    train = old.train_images[old.train_labels == CELL]
    test = old.test_images[old.test_labels == CELL]
    assert len(train) >= 390 and len(test) == 400
    assert _ks_pvalue(train, test) < 1e-4  # the blocks of the two splits are different populations
    assert _ks_pvalue(_one_class("train", 400), _one_class("shift", 400)) < 1e-4


def test_a_hold_out_of_the_population_training_split_has_the_law_of_the_fitted_part():
    data = build_dataset(DataConfig(image_size=16, max_per_class=800, imbalance=1, num_classes=2, test_per_class=10))
    assert data.train_groups is None  # i.i.d. draws need no groups
    parts = holdout_parts(data.train_labels, 0.5, seed=0)
    fit = parts.fit[data.train_labels[parts.fit] == 1]
    held = parts.held[data.train_labels[parts.held] == 1]
    assert len(parts.dropped) == 0 and len(held) == 400
    assert _ks_pvalue(data.train_images[fit], data.train_images[held]) > 0.01


def test_seeds_reproduce_and_differ():
    a = _one_class("train", 20, seed=3)
    assert torch.equal(a, _one_class("train", 20, seed=3))
    assert not torch.equal(a, _one_class("train", 20, seed=4))
    assert not torch.equal(a, _one_class("test", 20, seed=3))  # independent streams per split


def test_smaller_training_profiles_are_prefixes_class_by_class():
    small = build_dataset(DataConfig(image_size=16, max_per_class=40, test_per_class=5))
    large = build_dataset(DataConfig(image_size=16, max_per_class=120, test_per_class=5))
    for c in range(small.num_classes):
        a = small.train_images[small.train_labels == c]
        b = large.train_images[large.train_labels == c]
        assert torch.equal(a, b[:len(a)])
    assert torch.equal(small.test_images, large.test_images)  # the test draw does not depend on the profile


def test_the_shift_split_shares_no_pixel_with_the_population_region():
    data = build_dataset(DataConfig(image_size=16, max_per_class=60, test_per_class=30))
    side = data.provenance["crop_size"]
    labels = {"train_crops": data.train_labels, "test_crops": data.test_labels,
              "validation_crops": data.extra_splits["validation"][1], "shift_crops": data.extra_splits["shift"][1]}
    for key, split_labels in labels.items():
        crops = data.provenance[key]
        for c, name in enumerate(data.class_names):
            width = load_source(name).shape[1]
            boundary = width - int(np.ceil(SHIFT_FRACTION * width))
            x = crops[split_labels.numpy() == c, 1]
            if key == "shift_crops":
                assert x.min() >= boundary and x.max() + side <= width
            else:
                assert x.max() + side <= boundary  # wholly left of the reserved columns
    assert data.provenance["out_of_population_splits"] == ["shift"]
    assert data.provenance["test_same_distribution"] is True


def test_regions_refuse_a_crop_that_does_not_fit():
    assert regions((100, 400), 48)["population"] == (0, 52, 0, 300 - 48)
    with pytest.raises(ValueError, match="does not fit"):
        regions((100, 120), 48)  # a 30-column shift region cannot hold a 48-px crop


@pytest.mark.parametrize("photons, read_noise", [(20.0, 0.05), (200.0, 0.0), (60.0, 0.1)])
def test_acquisition_noise_has_the_poisson_gaussian_moments(photons, read_noise):
    # v = 0.5 everywhere: E z = v and Var z = v / photons + read_noise² (exact), far from the clip at 0 and 1
    v = 0.5
    images = torch.full((64, 3, 32, 32), v)
    add_acquisition_noise(images, CropLaw(48, 32, photons, read_noise), np.random.default_rng(0))
    z = images[:, 0].double().flatten()
    assert torch.equal(images[:, 0], images[:, 2])  # one grey value per pixel
    expected = v / photons + read_noise ** 2
    # 65 536 pixels: the sample variance is within 3 % of the truth; a halved photon count or a doubled read noise
    # would move it by ≥ 9 % in every case above
    assert float(z.mean()) == pytest.approx(v, abs=4 * np.sqrt(expected / z.numel()))
    assert float(z.var()) == pytest.approx(expected, rel=0.03)
    for wrong in (v / (photons / 2) + read_noise ** 2, v / photons + (2 * read_noise) ** 2):
        if wrong != expected:
            assert float(z.var()) != pytest.approx(wrong, rel=0.03)


def test_the_law_is_stated_in_provenance_and_follows_the_config():
    config = DataConfig(image_size=16, crop_size=32, photons=7.5, read_noise=0.02, max_per_class=20,
                        test_per_class=4)
    data = build_dataset(config)
    assert law_of(config) == CropLaw(32, 16, 7.5, 0.02)
    assert "32-px" in data.provenance["law"] and "Poisson(7.5 v)/7.5" in data.provenance["law"]
    assert data.test_counts.tolist() == [4] * 9
    assert sorted(data.extra_splits) == ["shift", "validation"]


def test_law_options_are_refused_by_other_data_sets():
    with pytest.raises(ValueError, match="--crop-size"):
        build_dataset(DataConfig(name="scitiles-lt", image_size=8, crop_size=32))
