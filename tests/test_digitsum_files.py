"""The original's six .npy files of digit sums: save, load (and its errors), the export CLI."""

import io
import pathlib
import re

import numpy as np
import pytest
from helpers_data import mnist_dir, random_digitsum_set

from jaxdigits.data import DataError, digitsum, export

FILES = [f"data{i}.npy" for i in range(3)] + [f"lab{i}.npy" for i in range(3)]


# -- save_original / load_original ------------------------------------------------------


@pytest.mark.parametrize("n", [3, 10, 11])
def test_save_and_load_original_round_trip(tmp_path, n):
    images, sums = random_digitsum_set(n)
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
    old_images, old_sums = random_digitsum_set(9, seed=1)
    digitsum.save_original(tmp_path / "ds", old_images, old_sums)
    real_save, calls = np.save, []

    def failing_save(file, array):  # the disk fills on the fourth file
        calls.append(file)
        if len(calls) == 4:
            raise OSError("No space left on device")
        real_save(file, array)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        digitsum.save_original(tmp_path / "ds", *random_digitsum_set(12, seed=2))
    monkeypatch.undo()
    images, sums = digitsum.load_original(tmp_path / "ds")
    np.testing.assert_array_equal(images, old_images)
    np.testing.assert_array_equal(sums, old_sums)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8, np.float32])
def test_load_original_accepts_whole_number_labels_of_any_numeric_dtype(tmp_path, dtype):
    images, sums = random_digitsum_set(9, seed=1)
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


def _npy_with_header(header: str) -> bytes:
    """A version 1.0 .npy file with this header text and no data."""
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")


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
    # np.load would try to allocate what the header says (MemoryError, or terabytes)
    "header asks for 6.7 TB": (
        _write_bytes(
            "data0.npy",
            _npy_with_header(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 40, 168)}"
            ),
        ),
        "data0.npy",
        r"holds 82 bytes but its header says shape \(1000000000, 40, 168\) dtype uint8",
    ),
    # numpy's header parser raises TypeError, or tokenize.TokenError, not ValueError
    "unhashable header": (
        _write_bytes("lab0.npy", _npy_with_header("{[]: 1}")),
        "lab0.npy",
        "not a readable",
    ),
    "unclosed header": (
        _write_bytes("lab0.npy", _npy_with_header("{'descr':\n")),
        "lab0.npy",
        "not a readable",
    ),
    "zip magic": (_write_bytes("data2.npy", b"PK\x03\x04" + bytes(60)), "data2.npy", "npz"),
    # timedelta64 is an integer dtype to numpy, but its values are no sums
    "timedelta labels": (
        _save("lab1.npy", np.array([1, 2, 3], "m8[s]")),
        "lab1.npy",
        "dtype timedelta64",
    ),
}


@pytest.mark.parametrize("case", BAD_FOLDERS, ids=list(BAD_FOLDERS))
def test_load_original_rejects_bad_files_naming_them(tmp_path, case):
    change, name, message = BAD_FOLDERS[case]
    images, sums = random_digitsum_set(9, seed=2)
    digitsum.save_original(tmp_path, images, sums)
    change(tmp_path)
    with pytest.raises(DataError, match=message) as error:
        digitsum.load_original(tmp_path)
    assert isinstance(error.value, ValueError)  # DataError is a ValueError
    assert str(tmp_path / name) in str(error.value)


def test_load_original_rejects_an_npz_archive_named_npy(tmp_path):
    images, sums = random_digitsum_set(9, seed=2)
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


# -- export -----------------------------------------------------------------------------


def test_export_cli_writes_the_original_files(tmp_path, capsys):
    out = tmp_path / "digitsum"
    argv = ["--dataset", "digitsum", "--out", str(out), "--size", "30"]
    export.main([*argv, "--mnist-dir", str(mnist_dir())])
    assert "30 canvases" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == FILES
    images, sums = digitsum.load_original(out)
    expected_images, expected_sums, _ = digitsum.generate(30, 0, "train", str(mnist_dir()))
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(sums, expected_sums)


def test_export_cli_seed_and_bad_mnist_dir(tmp_path):
    mnist_dir()  # skips without MNIST: the CLI below reads $JAXDIGITS_DATA_DIR
    out = tmp_path / "seeded"
    export.main(["--dataset", "digitsum", "--out", str(out), "--size", "12", "--seed", "3"])
    images, sums = digitsum.load_original(out)
    expected_images, expected_sums, _ = digitsum.generate(12, 3, "train", str(mnist_dir()))
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
