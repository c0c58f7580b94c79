"""Datasets by config: `build(config.data)` returns host numpy arrays.

Every run trains on a pool (split into train/validation per seed by the
trainer) and is tested on a set built from MNIST test only: the MNIST test
split itself, or (digit sums) canvases of MNIST test digits.
"""

import dataclasses

import numpy as np

from jaxdigits.data import digits, digitsum, mislabeled, mnist
from jaxdigits.data.errors import DataError

__all__ = ["NAMES", "Data", "DataError", "build", "extra_tests"]

NAMES = ("mislabeled", "mnist", "digits", "digitsum")  # config.data.name: what _pool builds


@dataclasses.dataclass
class Data:
    images: np.ndarray  # uint8 [N, h, w], the train/validation pool
    labels: np.ndarray  # int32 [N], the labels trained on (wrong ones for mislabeled)
    test_images: np.ndarray  # uint8 [M, h, w], from MNIST test only
    test_labels: np.ndarray  # int32 [M], true digits (or sums)
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
    if cfg.name == "digitsum":
        if cfg.path:
            images, sums = digitsum.load_original(cfg.path)
        else:
            images, sums, _ = digitsum.generate(
                cfg.size, cfg.generator_seed, "train", cfg.mnist_dir
            )
        return images, sums, sums
    raise ValueError(f"unknown config.data.name {cfg.name!r}: use {', '.join(NAMES)}")


def _test(cfg):
    if cfg.name == "digitsum":  # a fixed set of canvases of MNIST test digits
        images, sums, _ = digitsum.generate(
            cfg.test_size, cfg.generator_seed + 1, "test", cfg.mnist_dir
        )
        return images, sums
    return mnist.load("test", cfg.mnist_dir)


def _subset(limit: int, n: int) -> np.ndarray:
    """A fixed random subset of `limit` indices (all if 0): files sorted by class stay mixed."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def build(cfg) -> Data:
    images, labels, true = _pool(cfg)
    test_images, test_labels = _test(cfg)
    keep, keep_test = _subset(cfg.limit, len(labels)), _subset(cfg.test_limit, len(test_labels))
    return Data(
        images=images[keep],
        labels=labels[keep],
        test_images=test_images[keep_test],
        test_labels=test_labels[keep_test],
        true_labels=None if true is None else true[keep],
    )


def extra_tests(cfg) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Further digit-sum test sets named by config.data.extra_tests: "PLACEMENT-K", e.g.
    "anywhere-5" for five MNIST test digits at arbitrary positions (digitsum.generate).

    They use the test set's seed, so "anywhere-4" shows the test set's digits moved.
    """
    sets = {}
    for spec in cfg.get("extra_tests", ()):
        placement, _, k = spec.partition("-")
        if cfg.name != "digitsum" or placement not in digitsum.PLACEMENTS or not k.isdigit():
            raise ValueError(
                f"config.data.extra_tests: {spec!r} is not PLACEMENT-K (placement "
                f"{' or '.join(digitsum.PLACEMENTS)}, K digits) of a digit-sum config"
            )
        images, sums, _ = digitsum.generate(
            cfg.test_size, cfg.generator_seed + 1, "test", cfg.mnist_dir, int(k), placement
        )
        keep = _subset(cfg.test_limit, len(sums))
        sets[spec] = images[keep], sums[keep]
    return sets
