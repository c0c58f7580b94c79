"""Datasets by config: `build(config.data)` returns host numpy arrays.

Every run trains on a pool (split into train/validation per seed by the
trainer) and is tested on a set built from MNIST test only: the MNIST test
split itself, or (digit sums) canvases of MNIST test digits.
"""

import dataclasses

import numpy as np

from jaxdigits.data import digits, digitsum, fetch, mislabeled, mnist
from jaxdigits.data.errors import DataError
from jaxdigits.data.registry import DATASETS, Dataset, register, spec

__all__ = ["DATASETS", "Data", "DataError", "Dataset", "build", "extra_tests", "register", "spec"]

MNIST_TRAIN = 60_000  # images in MNIST train


@dataclasses.dataclass
class Data:
    images: np.ndarray  # uint8 [N, h, w], the train/validation pool
    labels: np.ndarray  # int32 [N], the labels trained on (wrong ones for mislabeled)
    test_images: np.ndarray  # uint8 [M, h, w], from MNIST test only
    test_labels: np.ndarray  # int32 [M], true digits (or sums)
    true_labels: np.ndarray | None = None  # int32 [N], when known (generated sets)


def _mnist_dir(cfg) -> str:
    """The folder of the IDX files, fetched into the cache first if need be."""
    return str(fetch.locate(cfg.mnist_dir, cfg.get("source", "auto"), cfg.get("mirror", "")))


def _mnist_test(cfg):
    return mnist.load("test", _mnist_dir(cfg))


def _mislabeled(cfg):
    if cfg.path:
        images, labels = mislabeled.load_original(cfg.path)
        return images, labels, None
    return mislabeled.generate(cfg.label_seed, _mnist_dir(cfg))


def _mnist(cfg):
    images, labels = mnist.load("train", _mnist_dir(cfg))
    return images, labels, labels


def _digits(cfg):
    if cfg.path:
        images, labels = digits.load_original(cfg.path, cfg.image_size)
    else:
        images, labels = digits.load_sklearn()
    return images, labels, labels


def _digitsum(cfg):
    if cfg.path:
        images, sums = digitsum.load_original(cfg.path)
    else:
        images, sums, _ = digitsum.generate(cfg.size, cfg.generator_seed, "train", _mnist_dir(cfg))
    return images, sums, sums


def _digitsum_test(cfg, k=digitsum.NUM_DIGITS, placement=digitsum.PLACEMENTS[0]):
    """Canvases of MNIST test digits, with the test set's seed: "anywhere-4" shows the test
    set's digits moved."""
    images, sums, _ = digitsum.generate(
        cfg.test_size, cfg.generator_seed + 1, "test", _mnist_dir(cfg), k, placement
    )
    return images, sums


def _digitsum_extra(cfg, name):
    """ "PLACEMENT-K", e.g. "anywhere-5": five MNIST test digits at arbitrary positions."""
    placement, _, k = name.partition("-")
    if placement not in digitsum.PLACEMENTS or not k.isdigit():
        raise ValueError(
            f"config.data.extra_tests: {name!r} is not PLACEMENT-K (placement "
            f"{' or '.join(digitsum.PLACEMENTS)}, K digits) of a digit-sum config"
        )
    return _digitsum_test(cfg, int(k), placement)


DIGIT_WIDTH = 28  # an MNIST digit: canvases fit WIDTH // 28 of them side by side


def _digitsum_extra_rule(name):
    placement, _, k = name.partition("-")
    most = digitsum.WIDTH // DIGIT_WIDTH
    if placement not in digitsum.PLACEMENTS or not k.isdecimal() or not 1 <= int(k) <= most:
        return (
            f"{name!r} is not PLACEMENT-K with PLACEMENT {' or '.join(digitsum.PLACEMENTS)}"
            f" and K 1..{most} digits"
        )
    return None


def _mnist_size(cfg):
    return None if cfg.get("path") else (MNIST_TRAIN, "MNIST train")


register("mislabeled", Dataset(_mislabeled, _mnist_test, 10, pool_size=_mnist_size))
register(
    "mnist", Dataset(_mnist, _mnist_test, 10, pool_size=lambda cfg: (MNIST_TRAIN, "MNIST train"))
)
register("digits", Dataset(_digits, _mnist_test, 10))
register(
    "digitsum",
    Dataset(
        _digitsum,
        _digitsum_test,
        digitsum.MAX_SUM + 1,
        config_keys={
            "size": 30_000,  # generated pool, as the original's three files
            "test_size": 10_000,  # canvases of MNIST test digits
            "generator_seed": 0,  # the data is fixed; training seeds only split and shuffle it
            "extra_tests": (),  # e.g. ("anywhere-4", "anywhere-5"): see _digitsum_extra
        },
        pool_size=lambda cfg: None if cfg.get("path") else (cfg.size, "config.data.size"),
        extra_test=_digitsum_extra,
        extra_test_rule=_digitsum_extra_rule,
    ),
)


def _subset(limit: int, n: int) -> np.ndarray:
    """A fixed random subset of `limit` indices (all if 0): files sorted by class stay mixed."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def build(cfg) -> Data:
    dataset = spec(cfg.name)
    images, labels, true = dataset.pool(cfg)
    test_images, test_labels = dataset.test(cfg)
    keep, keep_test = _subset(cfg.limit, len(labels)), _subset(cfg.test_limit, len(test_labels))
    return Data(
        images=images[keep],
        labels=labels[keep],
        test_images=test_images[keep_test],
        test_labels=test_labels[keep_test],
        true_labels=None if true is None else true[keep],
    )


def digitsum_test_digits(cfg) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 40, 168], digits int [n, 4]): the digit-sum test set as `build` cuts
    it, with each canvas's digits left to right (the MNIST test labels of the generator's
    sources). For scoring per-digit readings only; nothing trains on them."""
    images, _, sources = digitsum.generate(
        cfg.test_size, cfg.generator_seed + 1, "test", _mnist_dir(cfg)
    )
    _, labels = mnist.load("test", _mnist_dir(cfg))
    keep = _subset(cfg.test_limit, len(images))
    return images[keep], labels[sources[keep]]


def extra_tests(cfg) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The further test sets named by config.data.extra_tests, each cut to data.test_limit."""
    names = tuple(cfg.get("extra_tests", ()))
    if not names:
        return {}
    make = spec(cfg.name).extra_test
    if make is None:
        raise ValueError(f"config.data.extra_tests: data.name {cfg.name!r} has no extra tests")
    sets = {}
    for name in names:
        images, labels = make(cfg, name)
        keep = _subset(cfg.test_limit, len(labels))
        sets[name] = images[keep], labels[keep]
    return sets
