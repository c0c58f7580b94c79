"""The `<class>/<file>` image-folder reader and writer (folders and zips), and digits.py."""

import zipfile
import zlib

import numpy as np
import pytest
from helpers_data import png

from jaxdigits.data import digits, image_folder
from jaxdigits.data.errors import DataError

CLASSES = {"0": 0, "1": 1, "2": 2}


def _dataset(n_per_class=3, shape=(6, 5), seed=0):
    """{relative path: image} of a small random dataset in folders 0, 1, 2."""
    rng = np.random.default_rng(seed)
    return {
        f"{folder}/img{i}.png": rng.integers(0, 256, shape, dtype=np.uint8)
        for folder in CLASSES
        for i in range(n_per_class)
    }


def _make(tmp_path, files, layout):
    """Writes {relative path: image or bytes or None (a folder)} as a folder or a zip.

    layout: "dir", "zip" (class folders at the top) or "zip-top" (under one top folder).
    """
    if layout == "dir":
        root = tmp_path / "data"
        root.mkdir()
        for rel, content in files.items():
            target = root / rel
            if content is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else png(content))
        return root
    root = tmp_path / "data.zip"
    prefix = "mnistTask3/" if layout == "zip-top" else ""
    with zipfile.ZipFile(root, "w") as zf:
        for rel, content in files.items():
            if content is None:
                zf.writestr(prefix + rel.rstrip("/") + "/", b"")
            else:
                data = content if isinstance(content, bytes) else png(content)
                zf.writestr(prefix + rel, data)
    return root


LAYOUTS = ["dir", "zip", "zip-top"]


def _by_name(root, names, images, labels):
    """{relative path: (image, label)} from read()'s output."""
    prefix = f"{root}/"
    assert all(n.startswith(prefix) for n in names)
    return {n[len(prefix) :]: (img, lab) for n, img, lab in zip(names, images, labels, strict=True)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reads_images_and_labels(tmp_path, layout):
    files = _dataset()
    root = _make(tmp_path, files, layout)
    images, labels, names = image_folder.read(root, CLASSES)
    assert images.shape == (9, 6, 5) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    assert np.bincount(labels).tolist() == [3, 3, 3]
    got = _by_name(root, names, images, labels)
    assert sorted(got) == sorted(files)
    for rel, image in files.items():
        np.testing.assert_array_equal(got[rel][0], image)
        assert got[rel][1] == CLASSES[rel.split("/")[0]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_class_names_map_to_their_labels(tmp_path, layout):
    classes = {"Sample001": 7, "cat": 2}
    files = {"Sample001/a.png": np.full((4, 4), 10, np.uint8)}
    files["cat/b.png"] = np.full((4, 4), 20, np.uint8)
    root = _make(tmp_path, files, layout)
    images, labels, _ = image_folder.read(root, classes)
    pairs = zip(labels.tolist(), images[:, 0, 0].tolist(), strict=True)
    assert sorted(pairs) == [(2, 20), (7, 10)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_hidden_files_are_ignored(tmp_path, layout):
    files = _dataset(n_per_class=1)
    files[".DS_Store"] = b"\x00\x00\x00\x01Bud1 not an image"
    files["1/.DS_Store"] = b"junk"
    files["2/._img0.png"] = b"AppleDouble junk"
    files[".hidden/x.png"] = b"junk"
    if layout != "dir":
        files["__MACOSX/1/._img0.png"] = b"junk"
    root = _make(tmp_path, files, layout)
    images, labels, names = image_folder.read(root, CLASSES)
    assert len(images) == 3 and sorted(labels.tolist()) == [0, 1, 2]
    assert not any("/." in n or "__MACOSX" in n for n in names)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corrupt_image_names_the_file(tmp_path, layout):
    files = _dataset(n_per_class=1)
    files["1/x.png"] = np.random.default_rng(1).bytes(200)
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError, match="not a readable image") as info:
        image_folder.read(root, CLASSES)
    assert "1/x.png" in str(info.value)
    assert str(root) in str(info.value)


def test_truncated_png_names_the_file(tmp_path):
    files = _dataset(n_per_class=1)
    files["2/cut.png"] = png(np.full((6, 5), 9, np.uint8))[:-30]
    root = _make(tmp_path, files, "dir")
    with pytest.raises(DataError) as info:
        image_folder.read(root, CLASSES)
    assert str(root / "2" / "cut.png") in str(info.value)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("folder", ["11", "abc"])
def test_folder_that_is_not_a_class(tmp_path, layout, folder):
    files = _dataset(n_per_class=1)
    files[f"{folder}/img.png"] = np.zeros((6, 5), np.uint8)
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError, match="not a class") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/{folder}" in str(info.value)


def test_extra_folders_ok_skips_unknown_folders(tmp_path):
    files = _dataset(n_per_class=1)
    files["abc/img.png"] = b"not even an image"
    root = _make(tmp_path, files, "dir")
    images, labels, names = image_folder.read(root, CLASSES, extra_folders_ok=True)
    assert sorted(labels.tolist()) == [0, 1, 2]
    assert not any("/abc/" in n for n in names)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_class_folder(tmp_path, layout):
    files = {k: v for k, v in _dataset(n_per_class=2).items() if not k.startswith("2/")}
    files["2/"] = None
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError, match="missing or holds no images") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/2" in str(info.value)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_class_folder_holding_only_hidden_files(tmp_path, layout):
    files = {k: v for k, v in _dataset(n_per_class=2).items() if not k.startswith("0/")}
    files["0/.DS_Store"] = b"junk"
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError) as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/0" in str(info.value)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_class(tmp_path, layout):
    files = {k: v for k, v in _dataset(n_per_class=2).items() if not k.startswith("1/")}
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError) as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/1" in str(info.value)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_images_of_different_sizes(tmp_path, layout):
    files = _dataset(n_per_class=1, shape=(6, 5))
    files["2/z.png"] = np.zeros((5, 6), np.uint8)  # sorted last, so the one that differs
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError, match="same size|share one size") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/2/z.png" in str(info.value)


def test_size_resizes_and_invert_inverts(tmp_path):
    files = {
        "0/a.png": np.full((12, 10), 200, np.uint8),
        "1/b.png": np.full((5, 7), 30, np.uint8),
        "2/c.png": np.full((8, 8), 0, np.uint8),
    }
    root = _make(tmp_path, files, "dir")
    images, labels, _ = image_folder.read(root, CLASSES, size=(4, 3), invert=True)
    assert images.shape == (3, 4, 3)
    by_label = {int(lab): img for lab, img in zip(labels, images, strict=True)}
    assert (by_label[0] == 55).all() and (by_label[1] == 225).all() and (by_label[2] == 255).all()


def test_colour_images_become_grayscale(tmp_path):
    files = _dataset(n_per_class=1, shape=(4, 4))
    files["0/img0.png"] = np.full((4, 4, 3), 77, np.uint8)  # RGB, gray colour
    root = _make(tmp_path, files, "dir")
    images, labels, _ = image_folder.read(root, CLASSES)
    assert images.shape == (3, 4, 4)
    assert (images[labels == 0] == 77).all()


def test_file_outside_a_class_folder(tmp_path):
    files = _dataset(n_per_class=1)
    files["0/deeper/img.png"] = np.zeros((6, 5), np.uint8)
    root = _make(tmp_path, files, "dir")
    with pytest.raises(DataError, match="class folder") as info:
        image_folder.read(root, CLASSES)
    assert "0/deeper/img.png" in str(info.value)


def test_path_that_is_neither_folder_nor_zip(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello")
    with pytest.raises(DataError) as info:
        image_folder.read(path, CLASSES)
    assert str(path) in str(info.value)
    with pytest.raises(DataError) as info:
        image_folder.read(tmp_path / "absent", CLASSES)
    assert str(tmp_path / "absent") in str(info.value)


@pytest.mark.parametrize("target", ["out", "out.zip"])
def test_write_then_read_round_trips(tmp_path, target):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 7, 9), dtype=np.uint8)
    folders = [str(i % 3) for i in range(12)]
    names = [f"{i:03d}" for i in range(12)]
    path = tmp_path / target
    image_folder.write(path, images, folders, names)
    assert not (tmp_path / "out.zip.partial").exists()
    got_images, got_labels, got_names = image_folder.read(path, CLASSES)
    index = [int(n.rsplit("/", 1)[1].removesuffix(".png")) for n in got_names]
    assert sorted(index) == list(range(12))
    np.testing.assert_array_equal(got_images, images[index])
    assert got_labels.tolist() == [int(folders[i]) for i in index]


# --- digits.py --------------------------------------------------------------------------


def test_load_sklearn_digits():
    images, labels = digits.load_sklearn()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert sorted(set(labels.tolist())) == list(range(10))
    assert images.max() == 255 and images.min() == 0


def test_digits_load_original_reads_sample_folders(tmp_path):
    root = tmp_path / "photos"
    for folder in [*digits.SAMPLE_CLASSES, "Sample011"]:  # Sample011 is a letter: skipped
        (root / folder).mkdir(parents=True)
        (root / folder / "img.png").write_bytes(png(np.full((20, 16), 10, np.uint8)))
    images, labels = digits.load_original(str(root), (8, 8))
    assert images.shape == (10, 8, 8)
    assert sorted(labels.tolist()) == list(range(10))
    assert (images == 245).all()  # inverted: dark-on-light becomes white-on-black


def test_macos_zip_with_top_folder_and_macosx_folder(tmp_path):
    files = _dataset(n_per_class=1)
    path = tmp_path / "mac.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, image in files.items():
            zf.writestr(f"mnistTask3/{rel}", png(image))
            zf.writestr(f"__MACOSX/mnistTask3/{rel.replace('/', '/._')}", b"AppleDouble")
        zf.writestr("mnistTask3/.DS_Store", b"junk")
    images, labels, _ = image_folder.read(path, CLASSES)
    assert len(images) == 3 and sorted(labels.tolist()) == [0, 1, 2]


def test_top_level_file_beside_a_single_top_folder_is_named(tmp_path):
    files = _dataset(n_per_class=1)
    path = tmp_path / "readme.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.txt", b"hello")
        for rel, image in files.items():
            zf.writestr(f"mnistTask3/{rel}", png(image))
    with pytest.raises(DataError) as info:
        image_folder.read(path, CLASSES)
    assert "README.txt" in str(info.value)


def test_zip_with_a_damaged_member_names_it(tmp_path):
    root = _make(tmp_path, _dataset(), "zip")
    raw = bytearray(root.read_bytes())
    with zipfile.ZipFile(root) as zf:
        info = zf.getinfo("1/img0.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + 20] ^= 0xFF  # flip bits inside the stored PNG: the CRC check fails
    root.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="1/img0.png"):
        image_folder.read(root, CLASSES)


# --- hostile files: each is a DataError naming the file, whatever PIL or zipfile raised ---------

# Found by fuzzing: a PNG whose IDAT runs into bytes that are no chunk; PIL raises SyntaxError.
BROKEN_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x06\x08\x00\x00\x00\x00"
    b"\xdbn\x80'\x00\x00\x00\x12IDATx\x9ccd`\x84\x02\x0e(\xcd\xc2\r\xa3B\x04\x03\x00\nj\x00e"
    b"\xba\x99\xbb*\x00\x00\x00\x00IEN\x9a\xaeB`\x82"
)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose (checksummed) header claims width x height but that holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("layout", ["dir", "zip"])
def test_png_that_pil_rejects_with_a_syntax_error_names_the_file(tmp_path, layout):
    files = _dataset(n_per_class=1)
    files["1/x.png"] = BROKEN_PNG
    root = _make(tmp_path, files, layout)
    with pytest.raises(DataError, match="not a readable image") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/1/x.png" in str(info.value)


# 20000 x 20000 is over PIL's own bomb limit (it raises); 8000 x 8000 is under it (PIL would
# allocate 64 MB to decode it) but over ours.
@pytest.mark.parametrize("width, height", [(20000, 20000), (8000, 8000)])
def test_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path, width, height):
    files = _dataset(n_per_class=1)
    files["1/x.png"] = _png_declaring(width, height)
    root = _make(tmp_path, files, "dir")
    with pytest.raises(DataError, match="pixels") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/1/x.png" in str(info.value)


def test_zip_with_a_corrupt_directory_names_the_zip(tmp_path):
    path = tmp_path / "data.zip"
    # an end record only, saying the directory before it is 1 byte long: is_zipfile says yes
    path.write_bytes(b"PK\x05\x06" + bytes(8) + (1).to_bytes(4, "little") + bytes(6))
    assert zipfile.is_zipfile(path)
    with pytest.raises(DataError, match="not a readable zip") as info:
        image_folder.read(path, CLASSES)
    assert str(path) in str(info.value)


def _patch_directory_record(path, name: str, offset: int, value: bytes):
    """Writes value at offset of name's central-directory record (which zipfile trusts)."""
    raw = bytearray(path.read_bytes())
    start = raw.rindex(name.encode()) - 46  # the record's last copy of the name is at 46
    raw[start + offset : start + offset + len(value)] = value
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (10, (99).to_bytes(2, "little"), "NotImplementedError"),  # compression method 99
        (8, (1).to_bytes(2, "little"), "RuntimeError: .*encrypted"),  # the "encrypted" flag
    ],
    ids=["unsupported compression", "encrypted"],
)
def test_zip_member_zipfile_cannot_read_names_it(tmp_path, offset, value, message):
    root = _make(tmp_path, _dataset(n_per_class=1), "zip")
    _patch_directory_record(root, "1/img0.png", offset, value)
    with pytest.raises(DataError, match=message) as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/1/img0.png" in str(info.value)


def test_zip_member_declaring_more_than_max_file_bytes_is_not_unzipped(tmp_path, monkeypatch):
    root = _make(tmp_path, _dataset(n_per_class=1), "zip")
    monkeypatch.setattr(image_folder, "MAX_FILE_BYTES", 20)  # the PNGs are larger
    with pytest.raises(DataError, match="unzips to .* over the 20 allowed") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/0/img0.png" in str(info.value)


def test_zip_member_with_an_empty_name_is_named_as_out_of_place(tmp_path):
    """Found by fuzzing: ZipInfo.is_dir() raises IndexError on an empty name."""
    root = _make(tmp_path, _dataset(n_per_class=1), "zip")
    with zipfile.ZipFile(root, "a") as zf:
        zf.writestr(zipfile.ZipInfo(""), b"junk")
    with pytest.raises(DataError, match="expected <class folder>/<image file>") as info:
        image_folder.read(root, CLASSES)
    assert f"{root}/" in str(info.value)
