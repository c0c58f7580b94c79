"""Part 1 pretraining digits.

The original used the digits (Sample001..Sample010) of a numbers-and-letters
photo set, not available offline. The default here is scikit-learn's
bundled handwritten digits (1,797 images of 8x8, from another source than
MNIST), already white-on-black; a user's original photo folders load with
`--config.data.path` (grayscale, inverted, resized to the input size).
"""

import numpy as np

SAMPLE_CLASSES = {f"Sample{k + 1:03d}": k for k in range(10)}


def load_sklearn() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [1797, 8, 8], labels int32) from sklearn.datasets.load_digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int32)


def load_original(path: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the photo set's digit folders, as the original preprocessed them."""
    from jaxdigits.data import image_folder

    images, labels, _ = image_folder.read(
        path, SAMPLE_CLASSES, size=tuple(size), invert=True, extra_folders_ok=True
    )
    return images, labels
