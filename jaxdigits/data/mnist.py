"""MNIST from the four IDX files (gzipped or not) in a data directory.

No TensorFlow or torchvision is needed: the IDX format is a big-endian
header (magic, one uint32 per dimension) followed by raw uint8 data.
"""

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

from jaxdigits.data.errors import DataError

ENV_VAR = "JAXDIGITS_DATA_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MAGIC = {0x00000803: 3, 0x00000801: 1}  # images have 3 dims, labels 1
MAX_BYTES = 2**28  # 256 MiB: MNIST's largest file is 47 MB, so a gzip bomb stops here


def data_dir(override: str = "", fetch: bool = True) -> pathlib.Path:
    """The MNIST directory: the override, else $JAXDIGITS_DATA_DIR, else (with `fetch`) the
    cache folder, where MNIST is fetched the first time (jaxdigits/data/fetch.py)."""
    path = override or os.environ.get(ENV_VAR, "")
    if not path and fetch:
        from jaxdigits.data import fetch as fetching  # it reads IDX files with this module

        return fetching.locate()
    if not path:
        raise DataError(
            f"MNIST not found: set ${ENV_VAR} (or --config.data.mnist_dir) to a folder holding "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            "t10k-labels-idx1-ubyte (each may end in .gz)."
        )
    return pathlib.Path(path).expanduser()


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Parses one IDX file (gzipped if its name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    raw = bytearray()
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 20):  # in chunks: a small .gz can inflate to gigabytes
                raw += chunk
                if len(raw) > MAX_BYTES:
                    raise DataError(f"{path}: over {MAX_BYTES} bytes once read; not an MNIST file")
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from e
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise DataError(f"{path}: bad IDX magic number 0x{magic:08x}")
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python ints: no overflow on a corrupt header
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw) - header} bytes of data"
        )
    try:
        return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)
    except ValueError as e:  # a 0 in the shape lets the sizes match, but numpy refuses
        raise DataError(f"{path}: IDX header shape {shape} is not a valid array shape ({e})") from e


def _find(directory: pathlib.Path, name: str) -> pathlib.Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{directory}: missing MNIST file {name} (or {name}.gz). Put the four IDX files there "
        f"or point ${ENV_VAR} at the folder that has them."
    )


def load(split: str, directory: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Returns (images uint8 [N, 28, 28], labels int32 [N]) of 'train' or 'test'."""
    root = data_dir(directory)
    image_file, label_file = (_find(root, n) for n in FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(f"{image_file}: expected 3-dim images and 1-dim labels")
    if len(images) != len(labels):
        raise DataError(
            f"{image_file}: {len(images)} images but {label_file.name} has {len(labels)} labels"
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{label_file}: label {labels.max()} outside 0..9")
    return images, labels.astype(np.int32)
