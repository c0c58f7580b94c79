"""The mislabeled set: complementary labels, generation from MNIST, write/load round trip."""

import numpy as np
import pytest
from helpers_data import mnist_dir, write_fake_mnist

from jaxdigits.data import export, image_folder, mislabeled, mnist
from jaxdigits.data.errors import DataError


@pytest.fixture(scope="module")
def train():
    return mnist.load("train", str(mnist_dir()))


def _check_complementary(true, wrong):
    assert wrong.shape == true.shape
    assert wrong.dtype == np.int32
    assert wrong.min() >= 0 and wrong.max() <= 9
    assert not np.any(wrong == true)


def test_complementary_labels_on_synthetic_labels():
    true = np.random.default_rng(5).integers(0, 10, 20000)
    wrong = mislabeled.complementary_labels(true, seed=0)
    _check_complementary(true, wrong)
    as_read = true.astype(np.uint8)  # the dtype read_idx returns
    np.testing.assert_array_equal(mislabeled.complementary_labels(as_read, seed=0), wrong)


def test_complementary_labels_never_true_and_uniform_on_mnist(train):
    true = train[1]
    wrong = mislabeled.complementary_labels(true, seed=0)
    _check_complementary(true, wrong)
    for k in range(10):
        n = int(np.sum(true == k))
        counts = np.bincount(wrong[true == k], minlength=10)
        assert counts[k] == 0
        others = np.delete(counts, k)
        assert others.sum() == n
        expected = n / 9
        assert np.all(np.abs(others - expected) <= 0.1 * expected), (k, others.tolist())
        chi2 = float(np.sum((others - expected) ** 2 / expected))
        assert chi2 < 26.1, (k, chi2)  # 8 degrees of freedom, p = 0.001


def test_complementary_labels_are_deterministic(train):
    true = train[1]
    a = mislabeled.complementary_labels(true, seed=0)
    b = mislabeled.complementary_labels(true, seed=0)
    c = mislabeled.complementary_labels(true, seed=1)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.8  # 8/9 expected for independent draws
    _check_complementary(true, c)


def test_generate_is_mnist_train_with_complementary_labels(train):
    images, wrong, true = mislabeled.generate(seed=3, mnist_dir=str(mnist_dir()))
    np.testing.assert_array_equal(images, train[0])
    np.testing.assert_array_equal(true, train[1])
    np.testing.assert_array_equal(wrong, mislabeled.complementary_labels(train[1], seed=3))


def _check_round_trip(path, images, wrong):
    got_images, got_labels, names = image_folder.read(path, mislabeled.CLASSES)
    index = np.array([int(n.rsplit("/", 1)[1].removesuffix(".png")) for n in names])
    assert sorted(index.tolist()) == list(range(len(images)))
    np.testing.assert_array_equal(got_images, images[index])
    np.testing.assert_array_equal(got_labels, wrong[index])
    folders = [n.rsplit("/", 2)[1] for n in names]
    assert folders == [str(k) for k in wrong[index]]
    # load_original gives the same, in the reader's (folder, file name) order
    loaded_images, loaded_labels = mislabeled.load_original(str(path))
    order = sorted(range(len(images)), key=lambda i: (str(wrong[i]), i))
    np.testing.assert_array_equal(loaded_images, images[order])
    np.testing.assert_array_equal(loaded_labels, wrong[order])


@pytest.mark.parametrize("target", ["mnistTask3", "mnistTask3.zip"])
def test_write_and_load_original_round_trip_on_mnist(train, tmp_path, target):
    images, true = train[0][:200], train[1][:200]
    wrong = mislabeled.complementary_labels(true, seed=0)
    names = [f"{i:05d}" for i in range(len(images))]
    image_folder.write(tmp_path / target, images, [str(k) for k in wrong], names)
    _check_round_trip(tmp_path / target, images, wrong)


@pytest.mark.parametrize("target", ["set", "set.zip"])
def test_main_on_a_small_fake_mnist(tmp_path, target, capsys):
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (150, 28, 28), dtype=np.uint8)
    true = rng.integers(0, 10, 150)
    write_fake_mnist(tmp_path / "mnist", images, true, gz=True)
    out = tmp_path / target
    export.main(["--out", str(out), "--seed", "4", "--mnist-dir", str(tmp_path / "mnist")])
    assert "wrote 150 images" in capsys.readouterr().out
    wrong = mislabeled.complementary_labels(true, seed=4)
    _check_round_trip(out, images, wrong)


def test_main_without_mnist_exits_with_the_error(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    with pytest.raises(SystemExit) as info:
        export.main(["--out", str(tmp_path / "set")])
    assert "JAXDIGITS_DATA_DIR" in str(info.value.code)
    with pytest.raises(SystemExit) as info:
        export.main(["--out", str(tmp_path / "set"), "--mnist-dir", str(tmp_path / "none")])
    assert "train-images-idx3-ubyte" in str(info.value.code)
    assert not (tmp_path / "set").exists()


def test_load_original_rejects_a_folder_outside_0_to_9(tmp_path):
    images = np.zeros((11, 4, 4), np.uint8)
    folders = [str(k) for k in range(11)]  # "10" is not a class
    image_folder.write(tmp_path / "set", images, folders, [f"{i}" for i in range(11)])
    with pytest.raises(DataError) as info:
        mislabeled.load_original(str(tmp_path / "set"))
    assert f"{tmp_path / 'set'}/10" in str(info.value)


def test_zip_whose_name_is_a_class_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    wrong = np.arange(20, dtype=np.int32) % 10
    image_folder.write(
        tmp_path / "3.zip", images, [str(k) for k in wrong], [f"{i:05d}" for i in range(20)]
    )
    _check_round_trip(tmp_path / "3.zip", images, wrong)


@pytest.mark.parametrize("target", ["set", "set.zip"])
def test_load_original_rejects_images_that_are_not_28x28(tmp_path, target):
    images = np.zeros((10, 20, 30), np.uint8)  # height 20, width 30
    image_folder.write(tmp_path / target, images, [str(k) for k in range(10)], ["a"] * 10)
    with pytest.raises(DataError, match="image is 30x20, expected 28x28") as info:
        mislabeled.load_original(str(tmp_path / target))
    assert f"{tmp_path / target}/" in str(info.value) and "a.png" in str(info.value)
