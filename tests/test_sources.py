"""Every reader on tiny files written in the dataset's real on-disk format."""

import numpy as np
import pytest

from formats import write_cifar10, write_cifar100, write_idx, write_mnist_family, write_stl10
from gccluster.config import DataConfig
from gccluster.data.prepare import load_prepared, prepare_dataset, write_prepared
from gccluster.data.sources import read_idx
from gccluster.errors import UserError


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_family_idx_roundtrip_through_prepare(tmp_path, compress):
    arrays = write_mnist_family(tmp_path / "fm", compress=compress)
    cfg = DataConfig(dataset="fashion_mnist", local_dir=str(tmp_path / "fm"), image_size=None)
    prepared = prepare_dataset(cfg, tmp_path / "unused")
    assert prepared.train.images.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(prepared.train.images[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(prepared.test.labels, arrays["t10k"][1])
    assert prepared.meta["class_names"][0] == "T-shirt/top"
    write_prepared(prepared, tmp_path / "prepared")
    again = load_prepared(tmp_path / "prepared")
    np.testing.assert_array_equal(again.test.images, prepared.test.images)
    assert again.meta == prepared.meta


def test_mnist_found_in_torchvision_layout_under_data_root(tmp_path):
    write_mnist_family(tmp_path / "MNIST" / "raw")
    prepared = prepare_dataset(DataConfig(dataset="mnist", image_size=None, download=False), tmp_path)
    assert prepared.meta["source"].endswith("MNIST/raw")
    assert prepared.meta["n_train"] == 20


def test_cifar10_pickles(tmp_path):
    batches, (test_images, test_labels) = write_cifar10(tmp_path / "cifar-10-batches-py")
    prepared = prepare_dataset(DataConfig(dataset="cifar10", local_dir=str(tmp_path), image_size=None), tmp_path)
    assert prepared.train.images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(prepared.train.images[:4], batches[0][0])  # HWC restored
    np.testing.assert_array_equal(prepared.test.labels, test_labels)
    assert prepared.meta["class_names"][3] == "class3"


def test_cifar100_uses_the_20_superclasses(tmp_path):
    out = write_cifar100(tmp_path / "cifar-100-python")
    prepared = prepare_dataset(DataConfig(dataset="cifar100_20", local_dir=str(tmp_path), image_size=None), tmp_path)
    np.testing.assert_array_equal(prepared.train.labels, out["train"][1])
    np.testing.assert_array_equal(prepared.train.images, out["train"][0])
    assert prepared.meta["n_classes"] == 20 and prepared.meta["class_names"][0] == "super0"


@pytest.mark.parametrize("unlabeled", [False, True])
def test_stl10_binary(tmp_path, unlabeled):
    out = write_stl10(tmp_path / "stl10_binary")
    cfg = DataConfig(dataset="stl10", local_dir=str(tmp_path), image_size=None, stl10_unlabeled=unlabeled)
    prepared = prepare_dataset(cfg, tmp_path)
    np.testing.assert_array_equal(prepared.train.images[:3], out["train"][0])  # orientation restored
    np.testing.assert_array_equal(prepared.train.labels[:3], out["train"][1].astype(int) - 1)
    # The unlabelled images enter pretraining only: K-means, the head, the DDPM and the
    # rounds see the labelled train split alone.
    assert len(prepared.train.labels) == 3
    assert prepared.meta["n_unlabeled"] == (2 if unlabeled else 0)
    assert len(prepared.pretrain_images()) == (5 if unlabeled else 3)
    write_prepared(prepared, tmp_path / "prepared")
    loaded = load_prepared(tmp_path / "prepared")
    assert (loaded.unlabeled is None) == (not unlabeled)
    if unlabeled:
        np.testing.assert_array_equal(loaded.unlabeled, out["unlabeled"][0])
        np.testing.assert_array_equal(loaded.pretrain_images()[:3], prepared.train.images)
    assert prepared.meta["class_names"][-1] == "truck"


def test_resize_and_train_test_protocol(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    cfg = DataConfig(dataset="cifar10", local_dir=str(tmp_path), image_size=16, protocol="train+test")
    prepared = prepare_dataset(cfg, tmp_path)
    assert prepared.train.images.shape == (26, 16, 16, 3)
    assert prepared.test.images.shape == (26, 16, 16, 3)
    assert prepared.meta["image_size"] == 16


def test_digits_split_is_stratified_and_upscaled():
    prepared = prepare_dataset(DataConfig(), "unused")
    assert prepared.train.images.shape[1:] == (16, 16, 1)
    assert len(prepared.train.labels) + len(prepared.test.labels) == 1797
    counts = np.bincount(prepared.test.labels)
    assert counts.min() >= 35 and counts.max() <= 37
    assert prepared.train.images.max() > 200  # scaled from 0..16 to 0..255


def test_truncated_idx_is_reported(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 28, 28), np.uint8), compress=False)
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes()[:-10])
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "x")


def test_missing_local_dir_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="data.local_dir.*does not exist"):
        prepare_dataset(DataConfig(dataset="cifar10", local_dir=str(tmp_path / "nope")), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no cifar10 files"):
        prepare_dataset(DataConfig(dataset="cifar10", local_dir=str(tmp_path / "empty")), tmp_path)


def test_corrupt_cifar_pickle(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        prepare_dataset(DataConfig(dataset="cifar10", local_dir=str(tmp_path), image_size=None), tmp_path)


def test_imbalance_removes_seeded_fraction_per_class_from_train_only():
    fractions = (0.0, 0.5, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25)
    balanced = prepare_dataset(DataConfig(), "unused")
    cfg = DataConfig(imbalance_remove=fractions, imbalance_seed=3)
    imbalanced = prepare_dataset(cfg, "unused")
    before = np.bincount(balanced.train.labels, minlength=10)
    after = np.bincount(imbalanced.train.labels, minlength=10)
    np.testing.assert_array_equal(after, before - np.round(np.array(fractions) * before).astype(int))
    assert imbalanced.meta["n_train"] == after.sum()
    np.testing.assert_array_equal(imbalanced.test.labels, balanced.test.labels)
    again = prepare_dataset(cfg, "unused")
    np.testing.assert_array_equal(again.train.images, imbalanced.train.images)  # seeded


def test_imbalance_needs_one_fraction_per_class():
    with pytest.raises(UserError, match="has 2 fractions; the dataset has 10 classes"):
        prepare_dataset(DataConfig(imbalance_remove=(0.1, 0.2)), "unused")
