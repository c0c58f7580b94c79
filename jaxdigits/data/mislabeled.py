"""The mislabeled MNIST set ("mnistTask3"): every image filed under a wrong class.

Generated deterministically from MNIST train: each image gets a label
drawn uniformly from its 9 wrong classes (a uniform complementary label).
A user's original zip or folder (`<k>/<image>`, k = 0..9) loads instead
with `--config.data.path`; `python -m jaxdigits.data.export` writes the
generated set in that layout.
"""

import numpy as np

from jaxdigits.data import image_folder, mnist
from jaxdigits.data.errors import DataError

CLASSES = {str(k): k for k in range(10)}
SIZE = (28, 28)  # (height, width) of MNIST images


def complementary_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """A label drawn uniformly from the 9 classes other than each true label."""
    offset = np.random.default_rng(seed).integers(1, 10, size=len(labels))
    return ((labels + offset) % 10).astype(np.int32)


def generate(seed: int = 0, mnist_dir: str = ""):
    """(images uint8 [60000, 28, 28], wrong labels, true labels) from MNIST train."""
    images, true = mnist.load("train", mnist_dir)
    return images, complementary_labels(true, seed), true


def load_original(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], folder labels) of a user's mnistTask3 folder or zip.

    The originals are MNIST images: another size means another data set, so it stops here
    rather than reaching a model built for 28x28.
    """
    images, labels, names = image_folder.read(path, CLASSES)
    if images.shape[1:] != SIZE:  # read() has checked that all images share one size
        height, width = images.shape[1:]
        raise DataError(f"{names[0]}: image is {width}x{height}, expected {SIZE[1]}x{SIZE[0]}")
    return images, labels
