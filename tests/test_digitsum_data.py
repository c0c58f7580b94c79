"""The digit-sum set: generation from MNIST, the original's six .npy files, build and export."""

import io
import pathlib
import re

import numpy as np
import pytest
from helpers_data import REPO_ROOT, mnist_dir

from jaxdigits import configs
from jaxdigits import data as jdata
from jaxdigits.data import DataError, digitsum, export, mnist

QUARTER = digitsum.WIDTH // digitsum.NUM_DIGITS  # 42
FILES = [f"data{i}.npy" for i in range(3)] + [f"lab{i}.npy" for i in range(3)]


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


# -- save_original / load_original ------------------------------------------------------


def _random_set(n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 40, 168), dtype=np.uint8)
    sums = rng.integers(0, 37, n).astype(np.int32)
    return images, sums


@pytest.mark.parametrize("n", [3, 10, 11])
def test_save_and_load_original_round_trip(tmp_path, n):
    images, sums = _random_set(n)
    digitsum.save_original(tmp_path / "ds", images, sums)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == FILES
    # the files hold consecutive parts, in order
    parts = [len(np.load(tmp_path / "ds" / f"data{i}.npy")) for i in range(3)]
    assert sum(parts) == n and max(parts) - min(parts) <= 1
    np.testing.assert_array_equal(np.load(tmp_path / "ds" / "data0.npy"), images[: parts[0]])
    np.testing.assert_array_equal(np.load(tmp_path / "ds" / "lab2.npy"), sums[n - parts[2] :])
    got_images, got_sums = digitsum.load_original(str(tmp_path / "ds"))
    assert got_images.dtype == np.uint8 and got_sums.dtype == np.int32
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_sums, sums)


def test_a_failed_save_leaves_the_files_already_there_whole(tmp_path, monkeypatch):
    old_images, old_sums = _random_set(9, seed=1)
    digitsum.save_original(tmp_path / "ds", old_images, old_sums)
    real_save, calls = np.save, []

    def failing_save(file, array):  # the disk fills on the fourth file
        calls.append(file)
        if len(calls) == 4:
            raise OSError("No space left on device")
        real_save(file, array)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        digitsum.save_original(tmp_path / "ds", *_random_set(12, seed=2))
    monkeypatch.undo()
    images, sums = digitsum.load_original(tmp_path / "ds")
    np.testing.assert_array_equal(images, old_images)
    np.testing.assert_array_equal(sums, old_sums)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8, np.float32])
def test_load_original_accepts_whole_number_labels_of_any_numeric_dtype(tmp_path, dtype):
    images, sums = _random_set(9, seed=1)
    sums[0], sums[1] = 0, 36  # the bounds are allowed
    digitsum.save_original(tmp_path, images, sums.astype(dtype))
    assert np.load(tmp_path / "lab0.npy").dtype == dtype
    got_images, got_sums = digitsum.load_original(tmp_path)
    assert got_sums.dtype == np.int32
    np.testing.assert_array_equal(got_sums, sums)
    np.testing.assert_array_equal(got_images, images)


def _save(name, value):
    def change(folder: pathlib.Path):
        np.save(folder / name, value)

    return change


def _write_bytes(name, raw):
    def change(folder: pathlib.Path):
        (folder / name).write_bytes(raw)

    return change


def _remove(name):
    def change(folder: pathlib.Path):
        (folder / name).unlink()

    return change


def _npz_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, data=np.zeros((3, 40, 168), np.uint8))
    return buffer.getvalue()


def _pickled_object_array(folder: pathlib.Path):
    objects = np.empty(3, dtype=object)
    objects[:] = [{"sum": 1}, [2], "3"]
    np.save(folder / "lab1.npy", objects, allow_pickle=True)


BAD_FOLDERS = {
    "missing lab1": (_remove("lab1.npy"), "lab1.npy", "missing"),
    "missing data2": (_remove("data2.npy"), "data2.npy", "missing"),
    "width 167": (_save("data0.npy", np.zeros((3, 40, 167), np.uint8)), "data0.npy", "shape"),
    "4-D images": (_save("data1.npy", np.zeros((3, 40, 168, 1), np.uint8)), "data1.npy", "shape"),
    "2-D images": (_save("data1.npy", np.zeros((40, 168), np.uint8)), "data1.npy", "shape"),
    "float32 images": (
        _save("data2.npy", np.zeros((3, 40, 168), np.float32)),
        "data2.npy",
        "dtype",
    ),
    "label 37": (_save("lab0.npy", np.array([1, 37, 2])), "lab0.npy", "37 outside 0..36"),
    "label -1": (_save("lab2.npy", np.array([1, 2, -1])), "lab2.npy", "-1 outside 0..36"),
    "label 3.5": (_save("lab1.npy", np.array([1.0, 3.5, 2.0])), "lab1.npy", "whole numbers"),
    "label NaN": (_save("lab1.npy", np.array([1.0, np.nan, 2.0])), "lab1.npy", "whole numbers"),
    "label inf": (_save("lab0.npy", np.array([np.inf, 1.0, 2.0])), "lab0.npy", "whole numbers"),
    "string labels": (_save("lab0.npy", np.array(["1", "2", "3"])), "lab0.npy", "dtype"),
    "bool labels": (_save("lab0.npy", np.array([True, False, True])), "lab0.npy", "dtype"),
    "too few labels": (_save("lab2.npy", np.array([1, 2])), "lab2.npy", r"expected \(3,\)"),
    "too many labels": (_save("lab0.npy", np.arange(4)), "lab0.npy", r"expected \(3,\)"),
    "2-D labels": (_save("lab0.npy", np.ones((3, 1))), "lab0.npy", "shape"),
    "random bytes": (
        _write_bytes("data1.npy", np.random.default_rng(0).bytes(500)),
        "data1.npy",
        "not a readable",
    ),
    "empty file": (_write_bytes("lab2.npy", b""), "lab2.npy", "not a readable"),
    "truncated": (
        lambda folder: (folder / "data0.npy").write_bytes(
            (folder / "data0.npy").read_bytes()[:300]
        ),
        "data0.npy",
        "not a readable",
    ),
    "pickled objects": (_pickled_object_array, "lab1.npy", "not a readable"),
}


@pytest.mark.parametrize("case", BAD_FOLDERS, ids=list(BAD_FOLDERS))
def test_load_original_rejects_bad_files_naming_them(tmp_path, case):
    change, name, message = BAD_FOLDERS[case]
    images, sums = _random_set(9, seed=2)
    digitsum.save_original(tmp_path, images, sums)
    change(tmp_path)
    with pytest.raises(DataError, match=message) as error:
        digitsum.load_original(tmp_path)
    assert isinstance(error.value, ValueError)  # DataError is a ValueError
    assert str(tmp_path / name) in str(error.value)


def test_load_original_rejects_an_npz_archive_named_npy(tmp_path):
    images, sums = _random_set(9, seed=2)
    digitsum.save_original(tmp_path, images, sums)
    (tmp_path / "data0.npy").write_bytes(_npz_bytes())
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "data0.npy"))):
        digitsum.load_original(tmp_path)


def test_load_original_rejects_a_missing_folder_or_a_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="not a folder") as error:
        digitsum.load_original(missing)
    assert str(missing) in str(error.value)
    a_file = tmp_path / "data0.npy"
    np.save(a_file, np.zeros((1, 40, 168), np.uint8))
    with pytest.raises(DataError, match=re.escape(str(a_file))):
        digitsum.load_original(a_file)


def test_load_original_empty_folder_names_the_first_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'data0.npy'}: missing")):
        digitsum.load_original(tmp_path)


# -- build ------------------------------------------------------------------------------


def _digitsum_config(path, **data):
    cfg = configs.from_file(REPO_ROOT / "configs" / "digitsum_regressor.py", "smoke").data
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
    images, sums = _random_set(1000, seed=6)
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


# -- export -----------------------------------------------------------------------------


def test_export_cli_writes_the_original_files(tmp_path, capsys):
    out = tmp_path / "digitsum"
    argv = ["--dataset", "digitsum", "--out", str(out), "--size", "30"]
    export.main([*argv, "--mnist-dir", str(mnist_dir())])
    assert "30 canvases" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == FILES
    images, sums = digitsum.load_original(out)
    expected_images, expected_sums, _ = _generate(30, seed=0)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(sums, expected_sums)


def test_export_cli_seed_and_bad_mnist_dir(tmp_path):
    mnist_dir()  # skips without MNIST: the CLI below reads $JAXDIGITS_DATA_DIR
    out = tmp_path / "seeded"
    export.main(["--dataset", "digitsum", "--out", str(out), "--size", "12", "--seed", "3"])
    images, sums = digitsum.load_original(out)
    expected_images, expected_sums, _ = _generate(12, seed=3)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(sums, expected_sums)
    with pytest.raises(SystemExit, match="^error: .*missing MNIST file"):
        export.main(
            ["--dataset", "digitsum", "--out", str(tmp_path / "x"), "--mnist-dir", str(tmp_path)]
        )
    assert not (tmp_path / "x").exists()


def test_export_cli_refuses_a_bad_size_and_an_unwritable_out(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export.main(["--dataset", "digitsum", "--out", str(tmp_path / "a"), "--size", "-1"])
    assert "not a positive number" in capsys.readouterr().err
    taken = tmp_path / "a_file"
    taken.write_text("mine")
    with pytest.raises(SystemExit, match=f"error: .*{taken.name}"):
        export.main(["--dataset", "digitsum", "--out", str(taken), "--size", "3"])
    assert taken.read_text() == "mine"
