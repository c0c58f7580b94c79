"""The digit-sum set: 40x168 images of four MNIST digits, labelled by their sum (0..36).

The original's files are `data0.npy`..`data2.npy` (uint8 [N, 40, 168]) and
`lab0.npy`..`lab2.npy` (the sums); how their digits were placed is not
documented. We generate such data from MNIST: digit k sits in the k-th
quarter of the width (42 px) at a random offset (0..14 across, 0..12
down), pixels combined by maximum. `generate` is deterministic by seed;
the training pool draws digits from MNIST train, the test set from MNIST
test only, so a test image never shares a digit image with training.
"""

import math
import os
import pathlib

import numpy as np
from numpy.lib import format as npy_format

from jaxdigits.data import mnist
from jaxdigits.data.errors import DataError

HEIGHT, WIDTH = 40, 168
NUM_DIGITS = 4
MAX_SUM = 9 * NUM_DIGITS
NUM_FILES = 3
SIZE = 30_000  # images in the original's three files together


PLACEMENTS = ("quarters", "anywhere", "touching", "overlap")
MOST_OVERLAP = 3  # px of ink over ink between neighbours in the "overlap" placement


def _paste(digits: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """uint8 [n, k, h, w] digits at left edges dx and top edges dy [n, k] -> [n, 40, 168].

    Pixels are combined by maximum; the columns of a digit's box that fall off the left or
    right edge are cut (only blank ones do: the placements keep the ink on the canvas)."""
    n, k, h, w = digits.shape
    canvas = np.zeros((n, HEIGHT, WIDTH + 2 * w), np.uint8)  # a digit's width spare each side
    for j in range(k):
        # The canvases whose j-th digit sits at one (x, y) are pasted with one slice: a few
        # hundred slices per digit, against a gather of every pixel (5 times slower).
        xs, ys = w + dx[:, j], dy[:, j]
        at = np.argsort(xs * HEIGHT + ys, kind="stable")
        ends = np.flatnonzero(np.diff(xs[at] * HEIGHT + ys[at])) + 1
        for group in np.split(at, ends):
            x, y = xs[group[0]], ys[group[0]]
            box = (group, slice(y, y + h), slice(x, x + w))
            canvas[box] = np.maximum(canvas[box], digits[group, j])
    return canvas[:, :, w : w + WIDTH]


def compose(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n, k, 28, 28] digit images -> uint8 [n, 40, 168] canvases, one per k-th of the
    width (a quarter for k = 4) at a random offset within it."""
    n, k, h, w = digits.shape
    slot = WIDTH // k
    dy = rng.integers(0, HEIGHT - h + 1, size=(n, k))
    dx = rng.integers(0, slot - w + 1, size=(n, k))
    return _paste(digits, dx + slot * np.arange(k), dy)


def compose_anywhere(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n, k, 28, 28] -> [n, 40, 168]: the k digits left to right at random horizontal
    positions, any gaps (touching included) but never overlapping, and random vertical offsets.

    The k + 1 gaps are cut from the free width at k sorted uniform points.
    """
    n, k, h, w = digits.shape
    free = WIDTH - k * w
    if free < 0:
        raise ValueError(f"{k} digits of width {w} do not fit side by side in {WIDTH} px")
    cuts = np.sort(rng.integers(0, free + 1, size=(n, k)), axis=1)
    dy = rng.integers(0, HEIGHT - h + 1, size=(n, k))
    return _paste(digits, cuts + w * np.arange(k), dy)


def compose_close(digits: np.ndarray, rng: np.random.Generator, overlap=(0, 0)) -> np.ndarray:
    """uint8 [n, k, h, w] -> [n, 40, 168]: the k digits left to right with no blank column
    between their ink, each neighbour's ink o px over the last's (o uniform in overlap[0]..
    overlap[1]; 0: they touch), the group at a random position and each digit at a random
    height. Ink is any nonzero pixel; where ink meets ink, the brighter pixel shows.
    """
    n, k, h, w = digits.shape
    ink = digits.any(axis=2)  # [n, k, w]: the columns holding ink
    left = ink.argmax(-1)
    width = w - ink[..., ::-1].argmax(-1) - left  # an empty image counts as w wide
    over = rng.integers(overlap[0], overlap[1] + 1, size=(n, k - 1))
    starts = np.concatenate([np.zeros((n, 1), int), np.cumsum(width[:, :-1] - over, 1)], 1)
    span = starts[:, -1] + width[:, -1]
    if span.max() > WIDTH:
        raise ValueError(f"{k} digits of ink {span.max()} px wide do not fit in {WIDTH} px")
    first = rng.integers(0, WIDTH - span + 1)
    dy = rng.integers(0, HEIGHT - h + 1, size=(n, k))
    return _paste(digits, first[:, None] + starts - left, dy)


PLACE = {
    "quarters": compose,
    "anywhere": compose_anywhere,
    "touching": compose_close,
    "overlap": lambda digits, rng: compose_close(digits, rng, (1, MOST_OVERLAP)),
}


def generate(
    n: int,
    seed: int,
    split: str = "train",
    mnist_dir: str = "",
    num_digits: int = NUM_DIGITS,
    placement: str = "quarters",
):
    """(images uint8 [n, 40, 168], sums int32 [n], sources int [n, k]) from one MNIST split.

    `sources` are the MNIST indices (in `split`) of each canvas's digits, left
    to right. `placement` "quarters" is the study's layout; "anywhere" is
    `compose_anywhere`; "touching" and "overlap" (1..MOST_OVERLAP px) are
    `compose_close`. The digits drawn depend only on n, seed, split and
    num_digits, so both placements of one seed show the same digits.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}: use {' or '.join(PLACEMENTS)}")
    images, labels = mnist.load(split, mnist_dir)
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(labels), size=(n, num_digits))
    sums = labels[sources].sum(1, dtype=np.int32)
    return PLACE[placement](images[sources], rng), sums, sources


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


def _npy_header(file: pathlib.Path, f) -> tuple[tuple, np.dtype]:
    """Shape and dtype from an open .npy file's header, leaving f at the data."""
    if f.read(2) == b"PK":  # np.load would open it as an .npz zip
        raise DataError(f"{file}: an .npz archive (or another zip), expected one .npy array")
    f.seek(0)
    try:
        if npy_format.read_magic(f) == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(f)
        else:  # 2.0, or 3.0 (which differs only in the header's text encoding)
            shape, _, dtype = npy_format.read_array_header_2_0(f)
    except Exception as e:  # a corrupt header raises ValueError, TypeError, RecursionError, ...
        raise DataError(f"{file}: not a readable .npy array ({type(e).__name__}: {e})") from e
    return shape, dtype


def _load(file: pathlib.Path) -> np.ndarray:
    """One .npy array. Its header is checked against the file's size first: np.load allocates
    what the header says before reading, terabytes for a corrupt one."""
    if not file.is_file():
        raise DataError(
            f"{file}: missing; a digit-sum folder holds data0.npy..data{NUM_FILES - 1}.npy "
            f"and lab0.npy..lab{NUM_FILES - 1}.npy"
        )
    try:
        with open(file, "rb") as f:
            shape, dtype = _npy_header(file, f)
            size = os.fstat(f.fileno()).st_size
            need = f.tell() + math.prod(shape) * dtype.itemsize
            if min(shape, default=0) < 0 or need > size:
                raise DataError(
                    f"{file}: not a readable .npy array: holds {size} bytes but its header says "
                    f"shape {shape} dtype {dtype} (needs {need} bytes)"
                )
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OverflowError) as e:  # e.g. object arrays, which are pickles
                raise DataError(f"{file}: not a readable .npy array ({e})") from e
    except OSError as e:
        raise DataError(f"{file}: cannot read ({e})") from e


def _check_labels(file, labels, n):
    if labels.shape != (n,):
        raise DataError(f"{file}: labels of shape {labels.shape}, expected ({n},)")
    if labels.dtype.kind not in "iuf":  # not issubdtype(integer): timedelta64 is an integer
        raise DataError(f"{file}: labels of dtype {labels.dtype}, expected integers")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise DataError(f"{file}: labels must be whole numbers")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_SUM):
        bad = labels[(labels < 0) | (labels > MAX_SUM)][0]
        raise DataError(f"{file}: label {bad} outside 0..{MAX_SUM}")
    return labels.astype(np.int32)


def load_original(path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 40, 168], sums int32 [N]) from the original's six files, concatenated."""
    images, sums = load_files(path, labels=True)
    return np.concatenate(images), np.concatenate(sums)


def load_files(path, labels: bool | None = True) -> tuple[list[np.ndarray], list | None]:
    """The original's files one by one: images [data0, data1, data2] and their sums
    [lab0, lab1, lab2]. labels True: the lab files are needed; None: read them if all three
    are there, else return None for the sums; False: not read."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (expected data0.npy.. and lab0.npy.. in it)")
    lab_files = [path / f"lab{i}.npy" for i in range(NUM_FILES)]
    if labels is None:
        labels = all(f.is_file() for f in lab_files)
    images, sums = [], []
    for i in range(NUM_FILES):
        data_file = path / f"data{i}.npy"
        data = _load(data_file)
        if data.ndim != 3 or data.shape[1:] != (HEIGHT, WIDTH):
            raise DataError(f"{data_file}: images of shape {data.shape}, expected (N, 40, 168)")
        if data.dtype != np.uint8:
            raise DataError(f"{data_file}: images of dtype {data.dtype}, expected uint8")
        images.append(data)
        if labels:
            sums.append(_check_labels(lab_files[i], _load(lab_files[i]), len(data)))
    return images, sums if labels else None
