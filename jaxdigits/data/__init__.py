"""Datasets by config: `build(config.data)` returns host numpy arrays.

Every run trains on a pool (split into train/validation per seed by the
trainer) and is tested on the real MNIST test split.
"""

import dataclasses

import numpy as np

from jaxdigits.data import digits, mislabeled, mnist
from jaxdigits.data.errors import DataError

__all__ = ["Data", "DataError", "build"]


@dataclasses.dataclass
class Data:
    images: np.ndarray  # uint8 [N, h, w], the train/validation pool
    labels: np.ndarray  # int32 [N], the labels trained on (wrong ones for mislabeled)
    test_images: np.ndarray  # uint8 [M, 28, 28], MNIST test
    test_labels: np.ndarray  # int32 [M], true digits
    true_labels: np.ndarray | None = None  # int32 [N], when known (generated sets)


def _pool(cfg):
    if cfg.name == "mislabeled":
        if cfg.path:
            images, labels = mislabeled.load_original(cfg.path)
            return images, labels, None
        return mislabeled.generate(cfg.label_seed, cfg.mnist_dir)
    if cfg.name == "mnist":
        images, labels = mnist.load("train", cfg.mnist_dir)
        return images, labels, labels
    if cfg.name == "digits":
        if cfg.path:
            images, labels = digits.load_original(cfg.path, cfg.image_size)
        else:
            images, labels = digits.load_sklearn()
        return images, labels, labels
    raise ValueError(f"unknown config.data.name {cfg.name!r}: use mislabeled, mnist or digits")


def _head(array, limit):
    return array if array is None or not limit else array[:limit]


def build(cfg) -> Data:
    images, labels, true = _pool(cfg)
    test_images, test_labels = mnist.load("test", cfg.mnist_dir)
    return Data(
        images=_head(images, cfg.limit),
        labels=_head(labels, cfg.limit),
        test_images=_head(test_images, cfg.test_limit),
        test_labels=_head(test_labels, cfg.test_limit),
        true_labels=_head(true, cfg.limit),
    )
