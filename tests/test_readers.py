"""Readers of real data sets on fixtures written in their real formats: counts, labels, the NIH multi-label rule,
splits and profiles, decoding (grey, 16-bit, alpha), lazy images, error messages, and train + bounds end to end."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import real_formats as rf
import torch
from PIL import Image

from scilt_theory.data import DataConfig, LazyImages, build_dataset, longtail_counts, make_loader, row_range
from scilt_theory.data.images import Preprocess, load_image, model_preprocessing
from scilt_theory.data.lazy import FileStore, GeneratedStore
from scilt_theory.data.nih import finding_labels, label_table, nih_profile, single_label_rows
from scilt_theory.data.split import affordable_head


def real(name: str, root, **kwargs) -> DataConfig:
    return DataConfig(name=name, data_root=str(root), image_size=16, **kwargs)


# --- decoding ----------------------------------------------------------------------------------------------------

IDENTITY = Preprocess(image_size=20, interpolation="bicubic", crop_pct=1.0)


def test_grey_8_bit_is_replicated_to_three_channels_and_scaled_by_255(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    image = load_image(rf.save(tmp_path / "g.png", array), IDENTITY)
    assert image.shape == (3, 20, 20) and image.dtype == torch.float32
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    torch.testing.assert_close(image[0], torch.from_numpy(array / 255.0).float())  # same size: no resampling


def test_sixteen_bit_png_and_tiff_keep_their_precision(tmp_path):
    array = (np.arange(400, dtype=np.uint16) * 163 + 7).reshape(20, 20)  # levels 8-bit could not hold
    for suffix in (".png", ".tif"):
        path = rf.save(tmp_path / f"g16{suffix}", array)
        assert Image.open(path).mode.startswith("I")
        image = load_image(path, IDENTITY)
        torch.testing.assert_close(image[1], torch.from_numpy(array / 65535.0).float(), atol=1e-6, rtol=0)
    assert not np.allclose(np.round(array / 65535.0 * 255) / 255, array / 65535.0, atol=1e-4)


def test_alpha_is_dropped_not_composited_and_palette_is_converted(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.zeros((20, 20, 1), np.uint8)], axis=-1)  # fully transparent
    image = load_image(rf.save(tmp_path / "a.png", rgba), IDENTITY)
    torch.testing.assert_close(image, torch.from_numpy(rgb / 255.0).float().permute(2, 0, 1))
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "p.png")
    expected = np.asarray(palette.convert("RGB")) / 255.0
    torch.testing.assert_close(load_image(tmp_path / "p.png", IDENTITY),
                               torch.from_numpy(expected).float().permute(2, 0, 1))


def test_resize_and_centre_crop_match_timms_eval_transform(tmp_path):
    import timm.data

    rgb = np.random.default_rng(2).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    path = rf.save(tmp_path / "c.png", rgb)
    for interpolation, crop_pct in (("bicubic", 0.9), ("bilinear", 1.0)):
        ours = load_image(path, Preprocess(16, interpolation, crop_pct))
        theirs = timm.data.create_transform(input_size=(3, 16, 16), interpolation=interpolation, crop_pct=crop_pct,
                                            mean=(0, 0, 0), std=(1, 1, 1))(Image.open(path).convert("RGB"))
        assert ours.shape == theirs.shape == (3, 16, 16)
        # timm resizes the 8-bit PIL image, we resize the float tensor: same geometry, rounding-level differences
        assert float((ours - theirs.clamp(0, 1)).abs().mean()) < 0.01
        assert float((ours - theirs.clamp(0, 1)).abs().max()) < 0.06


def test_model_preprocessing_comes_from_timm():
    assert model_preprocessing("vit_base_patch16_224") == {"interpolation": "bicubic", "crop_pct": 0.9}
    assert model_preprocessing("vit_base_patch16_clip_224")["crop_pct"] == 0.95


def test_unreadable_image_is_one_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_image(bad, IDENTITY)
    truncated = tmp_path / "cut.png"
    rf.save(tmp_path / "ok.png", np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    truncated.write_bytes((tmp_path / "ok.png").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image(truncated, IDENTITY)
    with pytest.raises(ValueError, match=r"missing\.png does not exist"):
        load_image(tmp_path / "missing.png", IDENTITY)


# --- LazyImages --------------------------------------------------------------------------------------------------

@pytest.fixture
def lazy(tmp_path) -> tuple[LazyImages, list]:
    files = rf.image_folder(tmp_path, {"a": 4, "b": 3}, kinds=("L", "RGB", "I;16"))
    paths = files["a"] + files["b"]
    return LazyImages(FileStore([str(p) for p in paths], Preprocess(16))), paths


def test_lazy_images_behave_like_the_tensor_they_stand_for(lazy):
    images, paths = lazy
    dense = torch.stack([load_image(p, Preprocess(16)) for p in paths])
    assert images.shape == dense.shape == (7, 3, 16, 16) and images.dtype == torch.float32 and images.ndim == 4
    assert len(images) == images.size(0) == 7 and images.size() == dense.shape
    assert torch.equal(images[2], dense[2]) and torch.equal(images[-1], dense[-1])
    assert torch.equal(images[1:5], dense[1:5]) and torch.equal(images[torch.tensor(3)], dense[3])
    subset = images[torch.tensor([6, 0, 3])]
    assert isinstance(subset, LazyImages) and torch.equal(subset[0:3], dense[[6, 0, 3]])
    assert torch.equal(images[np.array([1, 2])][1], dense[2]) and torch.equal(images[[4]][0], dense[4])
    mask = torch.tensor([True, False, True, False, False, False, True])
    assert torch.equal(images[mask][0:3], dense[mask])
    assert torch.equal(subset[torch.tensor([2])][0], dense[3])  # subsets of subsets index the store correctly
    assert images.describe(0) == str(paths[0])
    with pytest.raises(IndexError):
        images[7]
    with pytest.raises(IndexError):
        images[torch.tensor([0, 9])]


def test_lazy_images_pickle_and_feed_a_dataloader_with_workers(lazy):
    images, paths = lazy
    copy = pickle.loads(pickle.dumps(images))
    assert torch.equal(copy[0:7], images[0:7])
    labels = torch.arange(7)
    batches = [(x, y) for x, y in make_loader(images, labels, batch_size=3, shuffle=True, seed=0, num_workers=1)]
    again = [(x, y) for x, y in make_loader(images, labels, batch_size=3, shuffle=True, seed=0)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    order = torch.cat([y for _, y in batches])
    assert torch.equal(torch.cat([x for x, _ in batches]), images[0:7][order])


def test_lazy_images_shard_like_tensors_and_row_range_decodes_nothing(lazy):
    images, paths = lazy
    dense = images[0:7]
    labels = torch.arange(7)
    for rank in (0, 1):  # each rank's part of every global batch is the tensor loader's part
        lazy_parts = [y for _, y in make_loader(images, labels, 4, True, 3, shard=(rank, 2))]
        dense_parts = [y for _, y in make_loader(dense, labels, 4, True, 3, shard=(rank, 2))]
        assert [p.tolist() for p in lazy_parts] == [p.tolist() for p in dense_parts]
    view = row_range(images, 2, 6)
    assert isinstance(view, LazyImages) and torch.equal(view[0:4], dense[2:6])
    assert torch.equal(row_range(dense, 2, 6), dense[2:6])


def test_generated_images_are_the_same_on_every_access_and_in_every_process():
    templates = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    store = GeneratedStore(np.array([0, 1, 2, 1]), templates, seed=5, noise_std=0.1)
    images = LazyImages(store)
    assert torch.equal(images[1], images[1]) and not torch.equal(images[1], images[3])
    assert torch.equal(pickle.loads(pickle.dumps(images))[0:4], images[0:4])
    assert float(images[0:4].min()) >= 0 and float(images[0:4].max()) <= 1


# --- the long-tail split -----------------------------------------------------------------------------------------

def test_affordable_head_is_the_largest_feasible_head():
    available = np.array([50, 30, 9, 9, 2])
    for imbalance in (1.0, 4.0, 25.0, 100.0):
        head = affordable_head(available, imbalance)
        assert np.all(longtail_counts(head, 5, imbalance) <= available)
        if head < available[0]:
            assert np.any(longtail_counts(head + 1, 5, imbalance) > available)


def test_imagefolder_counts_labels_profiles_and_seeds(tmp_path):
    files = rf.image_folder(tmp_path, {"alpha": 9, "beta": 14, "gamma": 6, "delta": 12})
    natural = build_dataset(real("imagefolder", tmp_path, profile="natural", test_per_class=2))
    assert natural.class_names == ("beta", "delta", "alpha", "gamma")  # head first by pool size
    assert natural.class_counts.tolist() == [12, 10, 7, 4] and natural.test_counts.tolist() == [2] * 4
    assert natural.provenance["pool_counts"] == [14, 12, 9, 6]
    # every sample's label is the folder it came from, and train and test never share a file
    train_files = [natural.train_images.describe(i) for i in range(len(natural.train_labels))]
    test_files = [natural.test_images.describe(i) for i in range(len(natural.test_labels))]
    assert not set(train_files) & set(test_files)
    for path, label in zip(train_files + test_files, natural.train_labels.tolist() + natural.test_labels.tolist()):
        assert str(path).split("/")[-2] == natural.class_names[label]
    expo = build_dataset(real("imagefolder", tmp_path, profile="exponential", imbalance=6.0, test_per_class=2,
                                max_per_class=12))
    assert expo.class_counts.tolist() == longtail_counts(12, 4, 6.0).tolist() == [12, 6, 3, 2]
    default_head = build_dataset(real("imagefolder", tmp_path, profile="exponential", imbalance=2.0,
                                     test_per_class=2))
    assert default_head.class_counts.tolist() == longtail_counts(affordable_head(np.array([12, 10, 7, 4]), 2.0),
                                                                 4, 2.0).tolist()
    scaled = build_dataset(real("imagefolder", tmp_path, profile="natural", test_per_class=2, max_per_class=6))
    assert scaled.class_counts.tolist() == [6, 5, 3, 2]  # max(1, floor(n_c * 6 / 12))
    again = build_dataset(real("imagefolder", tmp_path, profile="exponential", imbalance=6.0, test_per_class=2,
                                max_per_class=12))
    other = build_dataset(real("imagefolder", tmp_path, profile="exponential", imbalance=6.0, test_per_class=2,
                                 max_per_class=12, seed=1))
    assert np.array_equal(again.provenance["train_index"], expo.provenance["train_index"])
    assert not np.array_equal(other.provenance["train_index"], expo.provenance["train_index"])
    natural_test = build_dataset(real("imagefolder", tmp_path, test_split="natural", test_fraction=0.25))
    assert natural_test.test_counts.tolist() == [3, 3, 2, 1]  # max(1, floor(0.25 n_c)) of 14, 12, 9, 6
    dropped = build_dataset(real("imagefolder", tmp_path, exclude_classes=("beta",), num_classes=2, test_per_class=1))
    assert dropped.class_names == ("delta", "alpha")
    assert len(files["alpha"]) == 9


def test_imagefolder_with_a_separate_test_root(tmp_path):
    rf.image_folder(tmp_path / "train", {"x": 10, "y": 6, "z": 4})
    rf.image_folder(tmp_path / "test", {"x": 3, "y": 5, "z": 2}, seed=1)
    natural = build_dataset(real("imagefolder", tmp_path / "train", test_root=str(tmp_path / "test"),
                                 test_split="natural", profile="natural"))
    assert natural.class_counts.tolist() == [10, 6, 4] and natural.test_counts.tolist() == [3, 5, 2]
    assert all("/test/" in natural.test_images.describe(i) for i in range(10))
    balanced = build_dataset(real("imagefolder", tmp_path / "train", test_root=str(tmp_path / "test")))
    assert balanced.test_counts.tolist() == [2, 2, 2]  # the smallest official test class
    rf.image_folder(tmp_path / "bad_test", {"x": 1, "w": 1})
    with pytest.raises(ValueError, match="'w' that"):
        build_dataset(real("imagefolder", tmp_path / "train", test_root=str(tmp_path / "bad_test")))


def test_nih_release_single_label_rule_and_official_split(tmp_path):
    labels_of = rf.nih_release(tmp_path)
    data = build_dataset(real("nih-cxr-lt", tmp_path, profile="natural", test_split="natural"))
    assert data.class_names == ("No Finding", "Infiltration", "Effusion", "Hernia", "Mass")
    files = lambda images, n: [images.describe(i).split("/")[-1] for i in range(n)]  # noqa: E731
    train = files(data.train_images, len(data.train_labels))
    test = files(data.test_images, len(data.test_labels))
    test_list = set((tmp_path / "test_list.txt").read_text().split())
    assert set(test) <= test_list and not set(train) & test_list
    # the rule: exactly one finding kept with its label; every multi-label row dropped
    kept = {name for name, labels in labels_of.items() if "|" not in labels}
    assert set(train) | set(test) == kept
    for name, label in zip(train + test, data.train_labels.tolist() + data.test_labels.tolist()):
        assert labels_of[name] == data.class_names[label]
    assert data.provenance["multi_label_rows_dropped"] == 5
    counts = dict(zip(data.class_names, (data.class_counts + data.test_counts).tolist()))
    assert counts == rf.NIH_SINGLE
    no_head = build_dataset(real("nih-cxr-lt", tmp_path, exclude_classes=("No Finding",), profile="natural"))
    assert "No Finding" not in no_head.class_names and no_head.test_counts.tolist() == [1] * 4


def test_finding_label_parsing_and_label_table():
    assert finding_labels("Mass") == ["Mass"] and finding_labels(" A | B |A") == ["A", "B"]
    kept, labels = single_label_rows(["No Finding", "A|B", "C", "C|C", ""])
    assert kept.tolist() == [0, 2, 3] and labels == ["No Finding", "C", "C"]
    table = label_table(["No Finding", "Mass|Nodule", "Mass", "Hernia"])
    assert table["per_label"] == {"Hernia": 1, "Mass": 2, "Nodule": 1, "No Finding": 1}
    assert table["single_label"] == {"Hernia": 1, "Mass": 1, "Nodule": 0, "No Finding": 1}


def test_shipped_nih_profile_is_the_published_label_table():
    profile = nih_profile()
    per_label = profile["per_label"]
    # the per-label counts of the NIH ChestX-ray14 release (112 120 images, 15 labels)
    assert per_label["No Finding"] == 60361 and per_label["Infiltration"] == 19894
    assert per_label["Hernia"] == 227 and len(per_label) == 15 and profile["source"]["rows"] == 112120
    single = profile["single_label"]
    assert single["No Finding"] == per_label["No Finding"]  # "No Finding" never shares a row
    assert all(single[c] <= per_label[c] for c in per_label)
    assert sum(per_label.values()) - sum(single.values()) >= 2 * (112120 - sum(single.values()))


def test_nih_profile_has_exactly_the_real_counts_without_storing_pixels():
    data = build_dataset(DataConfig(name="nih-profile", image_size=8))
    per_label = nih_profile()["per_label"]
    assert sorted(data.class_counts.tolist(), reverse=True) == data.class_counts.tolist()
    assert dict(zip(data.class_names, data.class_counts.tolist())) == per_label
    assert data.test_counts.tolist() == [20] * 15 and isinstance(data.train_images, LazyImages)
    scaled = build_dataset(DataConfig(name="nih-profile-single", image_size=8, max_per_class=1000))
    single = nih_profile()["single_label"]
    expected = sorted((max(1, int(n * 1000 / 60361 + 1e-9)) for n in single.values()), reverse=True)
    assert scaled.class_counts.tolist() == expected
    with pytest.raises(ValueError, match="natural"):
        build_dataset(DataConfig(name="nih-profile", profile="exponential"))


def test_nih_cxr_lt_split_files(tmp_path):
    rf.nih_cxr_lt(tmp_path, {"No Finding": 9, "Atelectasis": 6, "Hernia": 3, "Pneumomediastinum": 2},
                  {"No Finding": 4, "Atelectasis": 3, "Hernia": 2, "Pneumomediastinum": 1}, balanced_test=2)
    balanced = build_dataset(real("nih-cxr-lt", tmp_path, profile="natural"))
    assert balanced.class_names == ("No Finding", "Atelectasis", "Hernia", "Pneumomediastinum")
    assert balanced.class_counts.tolist() == [9, 6, 3, 2] and balanced.test_counts.tolist() == [2] * 4
    assert balanced.provenance["source_test_file"].endswith("balanced-test.csv")
    natural = build_dataset(real("nih-cxr-lt", tmp_path, profile="natural", test_split="natural"))
    assert natural.test_counts.tolist() == [4, 3, 2, 1]
    # a row with two classes set is not a single-label file
    path = tmp_path / "LongTailCXR" / "nih-cxr-lt_single-label_train.csv"
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "1"
    path.write_text("\n".join(lines[:3] + [",".join(fields)] + lines[4:]) + "\n")
    with pytest.raises(ValueError, match=r"line 4 .*exactly one class"):
        build_dataset(real("nih-cxr-lt", tmp_path))


def test_isic2019_one_hot_table_and_unk(tmp_path):
    truth = rf.isic2019(tmp_path, {"NV": 12, "MEL": 8, "BCC": 6, "DF": 4})
    data = build_dataset(real("isic2019", tmp_path, profile="natural", test_per_class=1))
    assert data.class_names == ("NV", "MEL", "BCC", "DF")
    assert data.class_counts.tolist() == [11, 7, 5, 3]
    assert set(data.provenance["dropped_classes"]) == {"AK", "BKL", "VASC", "SCC", "UNK"}
    for i, label in enumerate(data.train_labels.tolist()):
        image = data.train_images.describe(i).split("/")[-1][:-4]
        assert truth[image] == data.class_names[label]


def test_bloodmnist_npz_any_size_and_pbc_folders(tmp_path):
    rf.bloodmnist_npz(tmp_path / "bloodmnist.npz", [12, 9, 7, 5, 4, 4, 3, 3], [3] * 8)
    rf.bloodmnist_npz(tmp_path / "bloodmnist_64.npz", [12, 9, 7, 5, 4, 4, 3, 3], [3] * 8, side=64)
    small = build_dataset(real("bloodmnist", tmp_path, profile="natural"))  # 16 px: the 28 px file suffices
    assert small.provenance["source_file"].endswith("bloodmnist.npz")
    large = build_dataset(DataConfig(name="bloodmnist", data_root=str(tmp_path), image_size=48, profile="natural"))
    assert large.provenance["source_file"].endswith("bloodmnist_64.npz") and large.train_images[0].shape == (3, 48, 48)
    assert small.class_counts.tolist() == [12, 9, 7, 5, 4, 4, 3, 3] and small.test_counts.tolist() == [3] * 8
    assert small.class_names[0] == "basophil" and small.class_names[3] == "immature granulocyte"
    with np.load(tmp_path / "bloodmnist.npz") as archive:
        raw = archive["train_images"][0]
    expected = load_image(rf.save(tmp_path / "first.png", raw), Preprocess(16))
    torch.testing.assert_close(small.train_images[0], expected)  # the npz path decodes like a file
    rf.image_folder(tmp_path / "pbc" / "PBC_dataset_normal_DIB", {"basophil": 8, "ig": 5, "platelet": 11})
    pbc = build_dataset(real("bloodmnist", tmp_path / "pbc", test_per_class=1, profile="natural"))
    assert pbc.class_names == ("platelet", "basophil", "ig") and pbc.class_counts.tolist() == [10, 7, 4]


@pytest.mark.parametrize("setup, config, match", [
    (lambda r: None, dict(name="isic2019"), "ISIC_2019_Training_GroundTruth.csv is missing"),
    (lambda r: rf.write_csv(r / "ISIC_2019_Training_GroundTruth.csv", ["image", "MEL"], [["x", "1.0"]]),
     dict(name="isic2019"), "lacks the column"),
    (lambda r: (rf.isic2019(r, {"NV": 3, "MEL": 3}), (r / "ISIC_2019_Training_Input" / "ISIC_0000001.jpg").unlink()),
     dict(name="isic2019"), r"1 of the 6 images listed in .*GroundTruth.csv are missing .*ISIC_0000001"),
    (lambda r: rf.nih_release(r, lists=False), dict(name="nih-cxr-lt"), "train_val_list.txt is missing"),
    (lambda r: None, dict(name="nih-cxr-lt"), "neither nih-cxr-lt_single-label_train.csv nor Data_Entry_2017"),
    (lambda r: np.savez(r / "bloodmnist.npz", train_images=np.zeros((2, 4, 4), np.uint8)),
     dict(name="bloodmnist"), "lacks the array.*train_labels"),
    (lambda r: None, dict(name="bloodmnist"), "neither a bloodmnist.*npz file nor cell-type folders"),
    (lambda r: (r / "a").mkdir(), dict(name="imagefolder"), "hold no image files"),
    (lambda r: rf.image_folder(r, {"a": 5, "b": 1}), dict(name="imagefolder"), "single image"),
    (lambda r: rf.image_folder(r, {"a": 5, "b": 3}), dict(name="imagefolder", test_per_class=3),
     "at most 2 test images"),
    (lambda r: rf.image_folder(r, {"a": 5, "b": 3}), dict(name="imagefolder", max_per_class=4, imbalance=1.0,
                                                          profile="exponential"),
     "class 'b' .* has 2 training images left .* needs 4"),
    (lambda r: rf.image_folder(r, {"a": 5, "b": 3}), dict(name="imagefolder", exclude_classes=("c",)),
     "no class named 'c'"),
])
def test_broken_layouts_fail_with_one_clear_message(tmp_path, setup, config, match):
    setup(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        build_dataset(DataConfig(data_root=str(tmp_path), image_size=16, **config))


def test_missing_root_and_misplaced_options(tmp_path):
    with pytest.raises(ValueError, match="pass --data-root"):
        build_dataset(DataConfig(name="imagefolder"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(DataConfig(name="imagefolder", data_root=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="embedded data set"):
        build_dataset(DataConfig(name="digits-lt", data_root=str(tmp_path)))
    with pytest.raises(ValueError, match="imagefolder only"):
        build_dataset(DataConfig(name="isic2019", data_root=str(tmp_path), test_root=str(tmp_path)))
    for bad in (dict(profile="zipf"), dict(test_split="half"), dict(test_fraction=1.0), dict(interpolation="area"),
                dict(crop_pct=0.0), dict(exclude_classes=("",))):
        with pytest.raises(ValueError):
            DataConfig(**bad)


# --- every reader trains one epoch and runs the bounds command on its fixture ------------------------------------

READERS = {
    "imagefolder": lambda r: rf.image_folder(r, {"a": 14, "b": 9, "c": 6}, kinds=("L", "RGB", "I;16", "RGBA")),
    "nih-cxr-lt": lambda r: rf.nih_release(r),
    "isic2019": lambda r: rf.isic2019(r, {"NV": 14, "MEL": 9, "BCC": 6}),
    "bloodmnist": lambda r: rf.bloodmnist_npz(r / "bloodmnist.npz", [12, 8, 6, 5, 4, 4, 3, 3], [2] * 8),
    # the PBC folder layout is read by the same reader (--dataset bloodmnist), from one folder per cell type
    "bloodmnist[pbc]": lambda r: rf.image_folder(r / "PBC_dataset_normal_DIB", {"neutrophil": 14, "ig": 9,
                                                                                 "platelet": 6}),
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_reader_trains_an_epoch_and_runs_the_bounds_command(tmp_path, name):
    from experiments import bounds as bounds_cli
    from experiments import train as train_cli

    root = tmp_path / "data"
    root.mkdir()
    READERS[name](root)
    out = tmp_path / "run"
    dataset = name.split("[")[0]
    extra = ["--test-per-class", "2"] if name == "bloodmnist[pbc]" else []  # PBC has no official split
    assert train_cli.main(["--dataset", dataset, "--data-root", str(root), *extra, "--profile", "natural",
                           "--img-size", "16", "--patch-size", "8", "--depth", "2", "--adapter", "full",
                           "--epochs", "1",
                           "--batch-size", "8", "--optimizer", "adamw", "--lr", "1e-3", "--warmup-epochs", "0",
                           "--out", str(out), "--quiet"]) == 0
    record = torch.load(out / "run.pt", weights_only=True)
    assert record["data_config"]["data_root"] == str(root)
    assert record["data_config"]["interpolation"] == "bicubic" and record["data_config"]["crop_pct"] == 0.9
    assert bounds_cli.main(["--ckpt", str(out / "run.pt"), "--draws", "50", "--no-plots", "--quiet"]) == 0
    report = json.loads((out / "bounds" / "bounds.json").read_text())
    assert report["run"]["dataset"] == dataset and report["n"] == sum(record["class_counts"])  # schema 2
    assert [row["n_train"] for row in report["per_class"]] == record["class_counts"]
