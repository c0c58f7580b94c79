"""Shared helpers for the data tests: the MNIST folder, IDX and PNG writers.

Not a conftest: the test modules import it (pytest puts tests/ on sys.path).
"""

import gzip
import io
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxdigits.data import mnist

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
# For modules that train on MNIST: skipped, with the reason, where it is not there.
NEEDS_MNIST = pytest.mark.skipif(
    not os.environ.get(mnist.ENV_VAR),
    reason=f"needs MNIST: set {mnist.ENV_VAR} to the IDX folder (CI: ../shared/data/mnist)",
)


def mnist_dir() -> pathlib.Path:
    """The shared MNIST folder from $JAXDIGITS_DATA_DIR, or skips the calling test."""
    value = os.environ.get(mnist.ENV_VAR, "")
    if not value:
        pytest.skip(f"${mnist.ENV_VAR} is unset: no MNIST IDX files to test against")
    path = pathlib.Path(value).expanduser()
    if not path.is_absolute() and not path.is_dir():
        path = REPO_ROOT / path  # CI gives it relative to the repo root
    names = [name for pair in mnist.FILES.values() for name in pair]
    missing = [n for n in names if not (path / n).is_file() and not (path / f"{n}.gz").is_file()]
    if missing:
        pytest.skip(f"${mnist.ENV_VAR}={value}: MNIST files missing there: {', '.join(missing)}")
    return path.resolve()


def idx_bytes(magic: int, shape: tuple[int, ...], data: bytes) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dimension, then the data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + data


def write_file(path: pathlib.Path, raw: bytes, gz: bool) -> pathlib.Path:
    """Writes raw bytes to path (gzipped, with .gz appended, when gz)."""
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_fake_mnist(directory: pathlib.Path, images: np.ndarray, labels: np.ndarray, gz: bool):
    """Writes images/labels as both MNIST splits' IDX files in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for image_name, label_name in mnist.FILES.values():
        write_file(
            directory / image_name, idx_bytes(IMAGES_MAGIC, images.shape, images.tobytes()), gz
        )
        write_file(
            directory / label_name,
            idx_bytes(LABELS_MAGIC, labels.shape, labels.astype(np.uint8).tobytes()),
            gz,
        )


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def random_digitsum_set(n, seed=0):
    """n random 40x168 uint8 canvases and sums 0..36 (int32): stand-ins for the original's."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 40, 168), dtype=np.uint8)
    sums = rng.integers(0, 37, n).astype(np.int32)
    return images, sums
