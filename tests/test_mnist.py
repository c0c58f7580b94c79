"""The IDX parser and MNIST loader: the shared files, and errors on generated ones."""

import gzip
import hashlib

import numpy as np
import pytest
from helpers_data import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    idx_bytes,
    mnist_dir,
    write_fake_mnist,
    write_file,
)

from jaxdigits.data import mnist
from jaxdigits.data.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_IMAGES_SHA256 = "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"


@pytest.fixture(scope="module")
def shared_dir():
    return mnist_dir()


@pytest.fixture(scope="module")
def train(shared_dir):
    return mnist.load("train", str(shared_dir))


@pytest.fixture(scope="module")
def test_split(shared_dir):
    return mnist.load("test", str(shared_dir))


# --- the shared MNIST files -------------------------------------------------------------


def test_train_split_shapes_and_label_counts(train):
    images, labels = train
    assert images.shape == (60000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (60000,)
    assert labels.dtype == np.int32
    assert np.bincount(labels, minlength=10).tolist() == TRAIN_COUNTS
    assert images.max() == 255 and images.min() == 0


def test_test_split_shapes_and_label_counts(test_split):
    images, labels = test_split
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert labels.dtype == np.int32
    assert np.bincount(labels, minlength=10).tolist() == TEST_COUNTS


def test_read_idx_returns_the_bytes_after_the_header(shared_dir, train):
    path = shared_dir / "train-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"{path} not present (only the uncompressed file is)")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    assert hashlib.sha256(raw).hexdigest() == TRAIN_IMAGES_SHA256
    images = mnist.read_idx(path)
    assert raw[:16] == idx_bytes(IMAGES_MAGIC, images.shape, b"")
    assert images.tobytes() == raw[16:]
    np.testing.assert_array_equal(images, train[0])


def test_load_uses_the_env_var(shared_dir, test_split, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(shared_dir))
    images, labels = mnist.load("test")
    np.testing.assert_array_equal(images, test_split[0])
    np.testing.assert_array_equal(labels, test_split[1])


def test_uncompressed_files_load_like_gzipped(shared_dir, test_split, tmp_path):
    for name in mnist.FILES["test"]:
        gz = shared_dir / f"{name}.gz"
        if not gz.is_file():
            pytest.skip(f"{gz} not present")
        (tmp_path / name).write_bytes(gzip.decompress(gz.read_bytes()))
    images, labels = mnist.load("test", str(tmp_path))
    np.testing.assert_array_equal(images, test_split[0])
    np.testing.assert_array_equal(labels, test_split[1])


# --- generated files --------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_small_generated_files_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 7)
    write_fake_mnist(tmp_path, images, labels, gz)
    for split in ("train", "test"):
        got_images, got_labels = mnist.load(split, str(tmp_path))
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
        assert got_labels.dtype == np.int32


def test_override_beats_the_env_var(tmp_path, monkeypatch):
    images = np.zeros((2, 4, 4), np.uint8)
    write_fake_mnist(tmp_path / "good", images, np.array([3, 4]), gz=False)
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "nowhere"))
    _, labels = mnist.load("train", str(tmp_path / "good"))
    assert labels.tolist() == [3, 4]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_bad_magic_number(tmp_path, gz):
    path = write_file(tmp_path / "bad", idx_bytes(0x00000802, (2, 2), bytes(4)), gz)
    with pytest.raises(DataError, match="magic") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("n_bytes", [3 * 28 * 28 - 1, 2 * 28 * 28, 0, 3 * 28 * 28 + 1])
def test_data_length_differs_from_header(tmp_path, gz, n_bytes):
    path = write_file(tmp_path / "short", idx_bytes(IMAGES_MAGIC, (3, 28, 28), bytes(n_bytes)), gz)
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)
    assert str(n_bytes) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("raw", [b"", b"\x00\x00\x08", idx_bytes(IMAGES_MAGIC, (3, 28), b"")])
def test_truncated_header(tmp_path, gz, raw):
    path = write_file(tmp_path / "header", raw, gz)
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream(tmp_path):
    whole = gzip.compress(idx_bytes(LABELS_MAGIC, (1000,), bytes(range(10)) * 100))
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_gz_name_on_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(idx_bytes(LABELS_MAGIC, (3,), bytes(3)))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip_stream(tmp_path):
    whole = bytearray(gzip.compress(idx_bytes(LABELS_MAGIC, (100,), bytes(range(100)))))
    for i in range(12, len(whole) - 8):  # keep the gzip header and trailer, spoil the data
        whole[i] ^= 0x55
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_header_shape_whose_size_overflows(tmp_path):
    path = tmp_path / "huge"  # 2**22 * 2**21 * 2**21 == 2**64 wraps to 0 in int64
    path.write_bytes(idx_bytes(IMAGES_MAGIC, (2**22, 2**21, 2**21), b""))
    with pytest.raises(DataError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_not_a_directory(tmp_path):
    with pytest.raises(DataError) as info:
        mnist.read_idx(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("which", [0, 1], ids=["images", "labels"])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_missing_file_in_directory(tmp_path, split, which, gz):
    write_fake_mnist(tmp_path, np.zeros((2, 3, 3), np.uint8), np.array([0, 1]), gz)
    missing = mnist.FILES[split][which]
    (tmp_path / (missing + (".gz" if gz else ""))).unlink()
    with pytest.raises(DataError) as info:
        mnist.load(split, str(tmp_path))
    assert missing in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_directory_that_does_not_exist(tmp_path):
    with pytest.raises(DataError) as info:
        mnist.load("test", str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "t10k-images-idx3-ubyte" in str(info.value)


def test_unset_data_dir(monkeypatch):
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    with pytest.raises(DataError, match=mnist.ENV_VAR):
        mnist.data_dir()
    with pytest.raises(DataError, match="JAXDIGITS_DATA_DIR"):
        mnist.load("train")


def test_empty_env_var_counts_as_unset(monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, "")
    with pytest.raises(DataError, match="JAXDIGITS_DATA_DIR"):
        mnist.load("test")


def test_images_and_labels_of_different_lengths(tmp_path):
    write_fake_mnist(tmp_path, np.zeros((3, 2, 2), np.uint8), np.array([1, 2]), gz=False)
    with pytest.raises(DataError) as info:
        mnist.load("train", str(tmp_path))
    assert str(tmp_path / "train-images-idx3-ubyte") in str(info.value)


def test_swapped_images_and_labels_files(tmp_path):
    images_name, labels_name = mnist.FILES["test"]
    (tmp_path / images_name).write_bytes(idx_bytes(LABELS_MAGIC, (2,), bytes(2)))
    (tmp_path / labels_name).write_bytes(idx_bytes(IMAGES_MAGIC, (2, 1, 1), bytes(2)))
    with pytest.raises(DataError) as info:
        mnist.load("test", str(tmp_path))
    assert str(tmp_path / images_name) in str(info.value)


def test_label_outside_0_to_9(tmp_path):
    write_fake_mnist(tmp_path, np.zeros((2, 2, 2), np.uint8), np.array([9, 10]), gz=True)
    with pytest.raises(DataError, match="10") as info:
        mnist.load("test", str(tmp_path))
    assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_file_larger_than_max_bytes_is_not_read_whole(tmp_path, monkeypatch, gz):
    """A small .gz can inflate to gigabytes: reading stops past MAX_BYTES, whatever the header."""
    monkeypatch.setattr(mnist, "MAX_BYTES", 5000)
    path = write_file(tmp_path / "big", idx_bytes(LABELS_MAGIC, (6000,), bytes(6000)), gz)
    with pytest.raises(DataError, match="over 5000 bytes") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_header_shape_with_a_zero_and_huge_dims(tmp_path):
    """Found by fuzzing: the sizes agree (0 == 0) but numpy refuses the shape (ValueError)."""
    path = tmp_path / "zero"
    path.write_bytes(idx_bytes(IMAGES_MAGIC, (0, 2**32 - 1, 2**32 - 1), b""))
    with pytest.raises(DataError, match="not a valid array shape") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)
