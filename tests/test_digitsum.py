"""The digit-sum set: generation from MNIST, and build (test_digitsum_files.py: the original's
six .npy files and the export CLI)."""

import numpy as np
import pytest
from helpers_data import REPO_ROOT, mnist_dir, random_digitsum_set

from jaxdigits import data as jdata
from jaxdigits import defaults
from jaxdigits.data import DataError, digitsum, mnist

QUARTER = digitsum.WIDTH // digitsum.NUM_DIGITS  # 42


@pytest.fixture(scope="module")
def train():
    return mnist.load("train", str(mnist_dir()))


@pytest.fixture(scope="module")
def test_split():
    return mnist.load("test", str(mnist_dir()))


def _generate(n, seed, split="train"):
    return digitsum.generate(n, seed, split, str(mnist_dir()))


def _offset_of(quarter: np.ndarray, digit: np.ndarray):
    """The (dy, dx) at which `digit` sits in `quarter` with zeros elsewhere, or None."""
    h, w = digit.shape
    for dy in range(quarter.shape[0] - h + 1):
        for dx in range(quarter.shape[1] - w + 1):
            if np.array_equal(quarter[dy : dy + h, dx : dx + w], digit):
                rest = quarter.copy()
                rest[dy : dy + h, dx : dx + w] = 0
                if not rest.any():
                    return dy, dx
    return None


def _check_canvases(images, sources, digit_images, rows):
    offsets = []
    for i in rows:
        for j in range(digitsum.NUM_DIGITS):
            quarter = images[i, :, QUARTER * j : QUARTER * (j + 1)]
            offset = _offset_of(quarter, digit_images[sources[i, j]])
            assert offset is not None, (i, j, int(sources[i, j]))
            offsets.append(offset)
    return offsets


def _crop(image: np.ndarray):
    """The bounding box of an image's nonzero pixels, as a hashable key."""
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    box = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return box.shape, box.tobytes()


# -- generate ---------------------------------------------------------------------------


def test_generate_shapes_dtypes_and_sums(train):
    images, sums, sources = _generate(200, seed=0)
    assert images.shape == (200, 40, 168) and images.dtype == np.uint8
    assert sums.shape == (200,) and np.issubdtype(sums.dtype, np.integer)  # int32: see below
    assert sources.shape == (200, 4) and np.issubdtype(sources.dtype, np.integer)
    assert sums.min() >= 0 and sums.max() <= 36
    assert sources.min() >= 0 and sources.max() < len(train[1])
    assert sources.max() >= 10_000  # drawn from all of MNIST train, not just its first 10k
    np.testing.assert_array_equal(sums, train[1][sources].sum(1))
    assert len(np.unique(sums)) > 10  # the sums vary
    assert images.reshape(200, 40, 4, QUARTER).any((1, 3)).all()  # a digit in every quarter


def test_generate_train_canvases_hold_the_source_train_digits(train, test_split):
    images, _, sources = _generate(50, seed=3)
    offsets = _check_canvases(images, sources, train[0], range(8))
    dys, dxs = zip(*offsets, strict=True)
    assert min(dys) >= 0 and max(dys) <= 12 and min(dxs) >= 0 and max(dxs) <= 14
    assert len(set(offsets)) > 1  # placed at random offsets, not all at one place
    # the same index into MNIST test would not give this canvas
    i, j = np.argwhere(sources < len(test_split[1]))[0]
    quarter = images[i, :, QUARTER * j : QUARTER * (j + 1)]
    assert _offset_of(quarter, test_split[0][sources[i, j]]) is None


def test_generate_test_canvases_hold_the_source_test_digits(train, test_split):
    images, sums, sources = _generate(50, seed=4, split="test")
    assert sources.max() < len(test_split[1]) == 10_000
    np.testing.assert_array_equal(sums, test_split[1][sources].sum(1))
    _check_canvases(images, sources, test_split[0], range(8))
    assert _offset_of(images[0, :, :QUARTER], train[0][sources[0, 0]]) is None


def test_generate_is_deterministic_by_seed():
    a = _generate(60, seed=7)
    b = _generate(60, seed=7)
    c = _generate(60, seed=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert np.mean(a[2] != c[2]) > 0.9  # other digits
    assert not np.array_equal(a[0], c[0])


def test_generate_sums_are_int32():
    assert _generate(5, seed=0)[1].dtype == np.int32


def test_compose_places_each_digit_in_its_quarter():
    digits = np.zeros((3, 4, 28, 28), np.uint8)
    for j in range(4):
        digits[:, j, 5:20, 10:15] = 50 * (j + 1)
    canvas = digitsum.compose(digits, np.random.default_rng(0))
    assert canvas.shape == (3, 40, 168) and canvas.dtype == np.uint8
    for j in range(4):
        quarter = canvas[:, :, QUARTER * j : QUARTER * (j + 1)]
        assert set(np.unique(quarter).tolist()) == {0, 50 * (j + 1)}
        assert (quarter > 0).sum() == 3 * 15 * 5  # the whole digit, nothing cut off


def test_paste_is_a_per_canvas_maximum_with_edges_cut():
    """Against pasting canvas by canvas: overlapping boxes combine by maximum, and a box over
    either edge loses its columns off the canvas."""
    rng = np.random.default_rng(0)
    n, k, h, w = 40, 5, 28, 28
    digits = rng.integers(0, 256, (n, k, h, w), dtype=np.uint8)
    dx = rng.integers(-w + 1, digitsum.WIDTH, (n, k))  # some boxes off the left or right edge
    dy = rng.integers(0, digitsum.HEIGHT - h + 1, (n, k))
    dx[:3], dy[:3] = 60, 5  # and a few canvases with all five at one place
    expected = np.zeros((n, digitsum.HEIGHT, digitsum.WIDTH + 2 * w), np.uint8)
    for i in range(n):
        for j in range(k):
            box = expected[i, dy[i, j] : dy[i, j] + h, w + dx[i, j] : w + dx[i, j] + w]
            np.maximum(box, digits[i, j], out=box)
    got = digitsum._paste(digits, dx, dy)
    np.testing.assert_array_equal(got, expected[:, :, w : w + digitsum.WIDTH])
    np.testing.assert_array_equal(got[0, 5:33, 60:88], digits[0].max(0))


# -- build ------------------------------------------------------------------------------


def _digitsum_config(path, **data):
    cfg = defaults.from_file(REPO_ROOT / "configs" / "digitsum_regressor.py", "smoke").data
    cfg.path = str(path)
    cfg.mnist_dir = str(mnist_dir())
    cfg.update(data)
    return cfg


def test_build_reads_the_saved_pool_and_makes_test_canvases_of_mnist_test(tmp_path, test_split):
    images, sums, _ = _generate(90, seed=5)
    digitsum.save_original(tmp_path, images, sums)
    cfg = _digitsum_config(tmp_path, limit=0, test_limit=0)
    assert cfg.name == "digitsum"
    built = jdata.build(cfg)
    np.testing.assert_array_equal(built.images, images)
    np.testing.assert_array_equal(built.labels, sums)
    np.testing.assert_array_equal(built.true_labels, sums)
    assert built.labels.dtype == np.int32

    assert len(built.test_labels) == cfg.test_size == 10_000
    assert built.test_images.shape == (10_000, 40, 168)
    assert built.test_images.dtype == np.uint8
    assert np.issubdtype(built.test_labels.dtype, np.integer)  # int32: see below
    assert built.test_labels.min() >= 0 and built.test_labels.max() <= 36
    # each quarter of a test canvas is an MNIST test digit, and the four add up to its label
    label_of = {_crop(image): label for image, label in zip(*test_split, strict=True)}
    for i in np.random.default_rng(0).choice(10_000, 300, replace=False):
        found = [
            label_of.get(_crop(built.test_images[i, :, QUARTER * j : QUARTER * (j + 1)]))
            for j in range(4)
        ]
        assert None not in found, i
        assert sum(found) == built.test_labels[i]


def test_build_without_a_path_generates_the_pool_from_mnist_train(test_split):
    cfg = _digitsum_config("", size=40, test_size=30, limit=0, test_limit=0)
    built = jdata.build(cfg)
    images, sums, _ = _generate(40, seed=cfg.generator_seed)
    np.testing.assert_array_equal(built.images, images)
    np.testing.assert_array_equal(built.labels, sums)
    np.testing.assert_array_equal(built.true_labels, sums)
    assert built.test_images.shape == (30, 40, 168)
    label_of = {_crop(image): label for image, label in zip(*test_split, strict=True)}
    for image, label in zip(built.test_images, built.test_labels, strict=True):
        quarters = [image[:, QUARTER * j : QUARTER * (j + 1)] for j in range(4)]
        assert sum(label_of[_crop(q)] for q in quarters) == label


def test_build_labels_are_int32_for_a_generated_pool_and_test_set():
    cfg = _digitsum_config("", size=20, test_size=20, limit=0, test_limit=0)
    built = jdata.build(cfg)
    assert built.labels.dtype == built.test_labels.dtype == np.int32


def test_build_applies_the_smoke_limits_to_the_saved_pool(tmp_path):
    images, sums = random_digitsum_set(1000, seed=6)
    digitsum.save_original(tmp_path, images, sums)
    cfg = _digitsum_config(tmp_path)
    assert (cfg.limit, cfg.test_limit) == (720, 500)
    built = jdata.build(cfg)
    assert len(built.images) == len(built.labels) == 720
    assert len(built.test_images) == len(built.test_labels) == 500
    # a subset of the saved rows, each with its own label, in file order
    row_of = {image.tobytes(): i for i, image in enumerate(images)}
    index = np.array([row_of[image.tobytes()] for image in built.images])
    assert np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(built.labels, sums[index])


def test_build_with_a_bad_path_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        jdata.build(_digitsum_config(tmp_path / "absent"))
