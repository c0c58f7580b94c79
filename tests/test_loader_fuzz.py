"""Fuzzing the data loaders with random and mutated files.

The contract: a loader returns its documented arrays or raises DataError naming the file at
fault. Any other exception fails, and so does an example slower than the deadline (a loader
that tries to allocate what a corrupt header claims, or decodes a bomb, is slow long before it
hangs). Plain regression tests for what this found sit in each loader's own test file.
"""

import contextlib
import gzip
import io
import pathlib
import tempfile
import zipfile
import zlib

import numpy as np
import pytest
from helpers_data import IMAGES_MAGIC, LABELS_MAGIC, idx_bytes, png, write_fake_mnist, write_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from jaxdigits.data import digits, digitsum, image_folder, mislabeled, mnist
from jaxdigits.data.errors import DataError

FUZZ = settings(
    max_examples=100,
    deadline=5_000,  # ms; examples take a few ms, a real allocation or bomb takes far longer
    suppress_health_check=[HealthCheck.too_slow],
)
pytestmark = pytest.mark.filterwarnings(
    "ignore::PIL.Image.DecompressionBombWarning",  # PIL warns, then the loader refuses the size
    "ignore::UserWarning:PIL.TiffImagePlugin",  # "Corrupt EXIF data" and the like
    "ignore:Stored array in format 3.0",  # np.save of a dtype with non-Latin-1 field names
)
CLASSES = {"0": 0, "1": 1}
DIGITSUM_FILES = [f"data{i}.npy" for i in range(3)] + [f"lab{i}.npy" for i in range(3)]
EDGE_WORDS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"]


@contextlib.contextmanager
def _tmp():
    """A fresh folder per example: pytest's tmp_path is shared by all examples of a test."""
    with tempfile.TemporaryDirectory() as name:
        yield pathlib.Path(name)


def _load_or_blame(load, *paths):
    """load()'s result, or None if it raised DataError naming one of paths (else the test fails)."""
    try:
        return load()
    except DataError as e:
        assert any(str(p) in str(e) for p in paths), f"{e!r} names none of {paths}"
        return None


@st.composite
def mutants(draw, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid file with 1..4 bytes flipped, runs inserted or deleted, a tail cut, or a
    32-bit edge value written (sizes and offsets); positions favour the head and the tail,
    where headers and zip directories are."""
    raw = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        n = len(raw)
        pos = draw(
            st.one_of(st.integers(0, min(n, 64)), st.integers(max(0, n - 64), n), st.integers(0, n))
        )
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "edge"]))
        if op == "flip" and pos < n:
            raw[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos:]
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 16))]
        elif op == "edge":
            raw[pos : pos + 4] = draw(st.sampled_from(EDGE_WORDS))
    return bytes(raw)


# --- mnist: IDX files ---------------------------------------------------------------------

SMALL_IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
VALID_IDX = [
    idx_bytes(IMAGES_MAGIC, SMALL_IMAGES.shape, SMALL_IMAGES.tobytes()),
    idx_bytes(LABELS_MAGIC, (3,), bytes([7, 0, 9])),
]


@st.composite
def idx_files(draw) -> bytes:
    """IDX-like files: a real or random magic, dims small or up to 2**32 - 1, any data."""
    magic = draw(
        st.one_of(st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]), st.integers(0, 2**32 - 1))
    )
    dim = st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1))
    shape = draw(st.lists(dim, min_size=0, max_size=3))
    return idx_bytes(magic, tuple(shape), draw(st.binary(max_size=100)))


def _check_idx(path, payload):
    """read_idx(path) is payload's data after the header, or a DataError naming path."""
    array = _load_or_blame(lambda: mnist.read_idx(path), path)
    if array is not None:
        assert array.dtype == np.uint8 and array.ndim in (1, 3)
        assert array.tobytes() == payload[4 + 4 * array.ndim :]


@FUZZ
@given(
    payload=st.one_of(st.binary(max_size=200), idx_files(), mutants(st.sampled_from(VALID_IDX))),
    gz=st.booleans(),
)
def test_read_idx_on_random_and_mutated_files(payload, gz):
    with _tmp() as tmp:
        _check_idx(write_file(tmp / "file", payload, gz), payload)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        mutants(st.sampled_from([gzip.compress(raw) for raw in VALID_IDX])),
    )
)
def test_read_idx_on_random_and_mutated_gzip_streams(raw):
    with _tmp() as tmp:
        path = tmp / "file.gz"
        path.write_bytes(raw)
        array = _load_or_blame(lambda: mnist.read_idx(path), path)
        if array is not None:
            assert array.dtype == np.uint8 and array.ndim in (1, 3)


@FUZZ
@given(which=st.integers(0, 3), gz=st.booleans(), data=st.data())
def test_mnist_load_with_one_mutated_file(which, gz, data):
    with _tmp() as tmp:
        write_fake_mnist(tmp, SMALL_IMAGES, np.array([7, 0, 9]), gz)
        suffix = ".gz" if gz else ""
        names = [name + suffix for pair in mnist.FILES.values() for name in pair]
        target = tmp / names[which]
        target.write_bytes(data.draw(mutants(st.just(target.read_bytes()))))
        for split, pair in mnist.FILES.items():
            paths = [tmp / (name + suffix) for name in pair]
            result = _load_or_blame(lambda split=split: mnist.load(split, str(tmp)), *paths)
            if result is not None:
                images, labels = result
                assert images.dtype == np.uint8 and images.ndim == 3
                assert labels.dtype == np.int32 and labels.shape == (len(images),)
                assert labels.min(initial=0) >= 0 and labels.max(initial=0) <= 9


# --- digitsum: six .npy files -------------------------------------------------------------


def _digitsum_folder(tmp: pathlib.Path) -> pathlib.Path:
    folder = tmp / "ds"
    images = np.random.default_rng(0).integers(0, 256, (6, 40, 168), dtype=np.uint8)
    digitsum.save_original(folder, images, np.array([0, 36, 5, 9, 17, 1], np.int32))
    return folder


def _check_digitsum(folder, *blamed):
    result = _load_or_blame(lambda: digitsum.load_original(folder), *blamed)
    if result is not None:
        images, sums = result
        assert images.dtype == np.uint8 and images.shape[1:] == (40, 168)
        assert sums.dtype == np.int32 and sums.shape == (len(images),)
        assert sums.min(initial=0) >= 0 and sums.max(initial=0) <= 36


def _partner(name: str) -> str:
    """The other file of a data/lab pair: a wrong count in one is reported on the labels."""
    return name.replace("data", "lab") if name.startswith("data") else name.replace("lab", "data")


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


VALID_NPY = [
    _npy(np.zeros((1, 40, 168), np.uint8)),
    _npy(np.array([3, 4], np.int64)),
    _npy(np.array([1.0, 2.0])),
    _npy(np.asfortranarray(np.zeros((2, 40, 168), np.uint8))),
]


@FUZZ
@given(
    name=st.sampled_from(DIGITSUM_FILES),
    raw=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),  # np.load takes it for a zip
        st.binary(max_size=300).map(lambda b: b"\x93NUMPY" + b),  # the .npy magic, then junk
        mutants(st.sampled_from(VALID_NPY)),
    ),
)
def test_digitsum_file_of_random_or_mutated_bytes(name, raw):
    with _tmp() as tmp:
        folder = _digitsum_folder(tmp)
        (folder / name).write_bytes(raw)
        _check_digitsum(folder, folder / name, folder / _partner(name))


ANY_DTYPE = st.one_of(
    hnp.scalar_dtypes(),
    hnp.byte_string_dtypes(max_len=4),
    hnp.unicode_string_dtypes(max_len=4),
    hnp.array_dtypes(max_size=3, allow_subarrays=True),
)


@pytest.mark.slow
@FUZZ
@given(
    name=st.sampled_from(DIGITSUM_FILES),
    array=st.one_of(
        hnp.arrays(ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
        hnp.arrays(hnp.scalar_dtypes(), st.sampled_from([(1,), (2,), (3,)])),  # label-shaped
        st.builds(
            np.zeros,
            st.tuples(st.integers(0, 3), st.just(40), st.sampled_from([168, 167])),
            st.sampled_from([np.uint8, np.int8, ">u2", np.float32]),
        ),
    ),
)
def test_digitsum_file_replaced_by_any_valid_array(name, array):
    with _tmp() as tmp:
        folder = _digitsum_folder(tmp)
        np.save(folder / name, array)
        _check_digitsum(folder, folder / name, folder / _partner(name))


# --- image folders: directories and zips --------------------------------------------------

FIRST = np.arange(30, dtype=np.uint8).reshape(6, 5)


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(FIRST).save(buffer, format=fmt)
    return buffer.getvalue()


# the likely formats of a photo set, and a few more of PIL's decoders
FORMATS = ["PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP", "PPM", "ICO", "TGA", "PCX", "SGI", "DDS"]
VALID_IMAGES = [_image_bytes(f) for f in FORMATS]


def _png_declaring(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose (checksummed) header claims width x height, with idat as its only data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _write_set(tmp: pathlib.Path, files: dict[str, bytes], layout: str) -> pathlib.Path:
    """{relative path: bytes} as a folder ("dir") or a deflated zip ("zip")."""
    if layout == "dir":
        for rel, raw in files.items():
            (tmp / "set" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "set" / rel).write_bytes(raw)
        return tmp / "set"
    with zipfile.ZipFile(tmp / "set.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, raw in files.items():
            zf.writestr(rel, raw)
    return tmp / "set.zip"


def _check_read(root, blamed, size=None):
    result = _load_or_blame(lambda: image_folder.read(root, CLASSES, size=size), blamed)
    if result is not None:
        images, labels, _ = result
        assert images.dtype == np.uint8 and images.shape == (2, *(size or FIRST.shape))
        assert labels.dtype == np.int32 and sorted(labels.tolist()) == [0, 1]


HOSTILE_IMAGES = st.one_of(
    st.binary(max_size=300),
    mutants(st.sampled_from(VALID_IMAGES)),
    st.builds(
        _png_declaring,
        st.integers(1, 2**31 - 1),
        st.integers(1, 2**31 - 1),
        st.one_of(st.binary(max_size=40), st.binary(max_size=40).map(zlib.compress)),
    ),
)


@FUZZ
@given(
    raw=HOSTILE_IMAGES,
    layout=st.sampled_from(["dir", "zip"]),
    size=st.sampled_from([None, (4, 3)]),
)
def test_image_file_of_random_mutated_or_bomb_bytes(raw, layout, size):
    with _tmp() as tmp:
        root = _write_set(tmp, {"0/a.png": png(FIRST), "1/b.png": raw}, layout)
        _check_read(root, f"{root}/1/b.png", size)


VALID_ZIPS = []
for _method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
    _buffer = io.BytesIO()
    with zipfile.ZipFile(_buffer, "w", _method) as _zf:
        _zf.writestr("0/a.png", png(FIRST))
        _zf.writestr("1/b.png", png(FIRST[::-1].copy()))
    VALID_ZIPS.append(_buffer.getvalue())


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.tuples(st.binary(max_size=100), st.binary(min_size=18, max_size=40)).map(
            lambda parts: parts[0] + b"PK\x05\x06" + parts[1]  # passes zipfile.is_zipfile
        ),
        mutants(st.sampled_from(VALID_ZIPS)),
    )
)
def test_whole_zip_of_random_or_mutated_bytes(raw):
    with _tmp() as tmp:
        root = tmp / "set.zip"
        root.write_bytes(raw)
        _check_read(root, root)


# --- mislabeled and digits: image sizes ---------------------------------------------------

SIZES = st.one_of(st.just((28, 28)), st.tuples(st.integers(1, 40), st.integers(1, 40)))


@settings(FUZZ, max_examples=40)
@given(shape=SIZES, layout=st.sampled_from(["dir", "zip"]))
def test_mislabeled_accepts_28x28_and_names_any_other_size(shape, layout):
    with _tmp() as tmp:
        image = np.full(shape, 200, np.uint8)
        root = _write_set(tmp, {f"{k}/img.png": png(image) for k in range(10)}, layout)
        try:
            images, labels = mislabeled.load_original(str(root))
        except DataError as e:
            height, width = shape
            assert shape != (28, 28), e
            assert f"{root}/" in str(e) and f"{width}x{height}" in str(e) and "28x28" in str(e)
        else:
            assert shape == (28, 28), "loaded images that are not 28x28"
            assert images.shape == (10, 28, 28) and images.dtype == np.uint8
            assert sorted(labels.tolist()) == list(range(10))


@settings(FUZZ, max_examples=40)
@given(shape=SIZES, raw=st.one_of(st.none(), mutants(st.sampled_from(VALID_IMAGES))))
def test_digits_load_original_resizes_any_size_or_names_the_bad_photo(shape, raw):
    with _tmp() as tmp:
        files = {
            f"{folder}/img.png": png(np.zeros(shape, np.uint8)) for folder in digits.SAMPLE_CLASSES
        }
        if raw is not None:
            files["Sample004/img.png"] = raw
        root = _write_set(tmp, files, "dir")
        result = _load_or_blame(
            lambda: digits.load_original(str(root), (8, 8)), f"{root}/Sample004/img.png"
        )
        if result is not None:
            images, labels = result
            assert images.shape == (10, 8, 8) and images.dtype == np.uint8
            assert sorted(labels.tolist()) == list(range(10))
