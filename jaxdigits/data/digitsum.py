"""The digit-sum set: 40x168 images of four MNIST digits, labelled by their sum (0..36).

The original's files are `data0.npy`..`data2.npy` (uint8 [N, 40, 168]) and
`lab0.npy`..`lab2.npy` (the sums); how their digits were placed is not
documented. We generate such data from MNIST: digit k sits in the k-th
quarter of the width (42 px) at a random offset (0..14 across, 0..12
down), pixels combined by maximum. `generate` is deterministic by seed;
the training pool draws digits from MNIST train, the test set from MNIST
test only, so a test image never shares a digit image with training.
"""

import pathlib

import numpy as np

from jaxdigits.data import mnist
from jaxdigits.data.errors import DataError

HEIGHT, WIDTH = 40, 168
NUM_DIGITS = 4
MAX_SUM = 9 * NUM_DIGITS
NUM_FILES = 3
SIZE = 30_000  # images in the original's three files together


def compose(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n, 4, 28, 28] digit images -> uint8 [n, 40, 168] canvases, one per quarter."""
    n, k, h, w = digits.shape
    slot = WIDTH // k
    canvas = np.zeros((n, HEIGHT, WIDTH), np.uint8)
    dy = rng.integers(0, HEIGHT - h + 1, size=(n, k))
    dx = rng.integers(0, slot - w + 1, size=(n, k))
    rows = np.arange(n)[:, None, None]
    for j in range(k):
        ys = dy[:, j, None, None] + np.arange(h)[None, :, None]
        xs = j * slot + dx[:, j, None, None] + np.arange(w)[None, None, :]
        canvas[rows, ys, xs] = np.maximum(canvas[rows, ys, xs], digits[:, j])
    return canvas


def generate(n: int, seed: int, split: str = "train", mnist_dir: str = ""):
    """(images uint8 [n, 40, 168], sums int32 [n], sources int [n, 4]) from one MNIST split.

    `sources` are the MNIST indices (in `split`) of each canvas's digits, left to right.
    """
    images, labels = mnist.load(split, mnist_dir)
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(labels), size=(n, NUM_DIGITS))
    sums = labels[sources].sum(1, dtype=np.int32)
    return compose(images[sources], rng), sums, sources


def save_original(path, images: np.ndarray, sums: np.ndarray):
    """Writes the original's six files: data{i}.npy and lab{i}.npy, i = 0..2.

    All six are written as `.partial` files first and renamed only then, so
    a failed write never leaves a half file under a final name.
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for i, part in enumerate(np.array_split(np.arange(len(sums)), NUM_FILES)):
        for name, array in ((f"data{i}.npy", images[part]), (f"lab{i}.npy", sums[part])):
            tmp = path / (name + ".partial")
            with open(tmp, "wb") as f:  # a file object: np.save adds no suffix
                np.save(f, array)
            written.append((tmp, path / name))
    for tmp, final in written:
        tmp.replace(final)


def _load(file: pathlib.Path) -> np.ndarray:
    if not file.is_file():
        raise DataError(
            f"{file}: missing; a digit-sum folder holds data0.npy..data{NUM_FILES - 1}.npy "
            f"and lab0.npy..lab{NUM_FILES - 1}.npy"
        )
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{file}: not a readable .npy array ({e})") from e
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        array.close()
        raise DataError(f"{file}: an .npz archive, expected one .npy array")
    return array


def _check_labels(file, labels, n):
    if labels.shape != (n,):
        raise DataError(f"{file}: labels of shape {labels.shape}, expected ({n},)")
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DataError(f"{file}: labels of dtype {labels.dtype}, expected integers")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise DataError(f"{file}: labels must be whole numbers")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_SUM):
        bad = labels[(labels < 0) | (labels > MAX_SUM)][0]
        raise DataError(f"{file}: label {bad} outside 0..{MAX_SUM}")
    return labels.astype(np.int32)


def load_original(path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 40, 168], sums int32 [N]) from the original's six files, concatenated."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (expected data0.npy.. and lab0.npy.. in it)")
    images, sums = [], []
    for i in range(NUM_FILES):
        data_file, lab_file = path / f"data{i}.npy", path / f"lab{i}.npy"
        data = _load(data_file)
        if data.ndim != 3 or data.shape[1:] != (HEIGHT, WIDTH):
            raise DataError(f"{data_file}: images of shape {data.shape}, expected (N, 40, 168)")
        if data.dtype != np.uint8:
            raise DataError(f"{data_file}: images of dtype {data.dtype}, expected uint8")
        images.append(data)
        sums.append(_check_labels(lab_file, _load(lab_file), len(data)))
    return np.concatenate(images), np.concatenate(sums)
