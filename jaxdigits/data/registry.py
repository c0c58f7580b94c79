"""The datasets a config can name (config.data.name), each one `Dataset` in one registry.

data/__init__.py registers the built-in ones; a plug-in calls `register("name", Dataset(...))`
before training (docs/extending.md).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """How to build a training pool and its test set from config.data (`cfg` below).

    pool:        cfg -> (images uint8 [N, h, w], labels int32 [N], true labels or None):
                 what the run trains on (split into train/validation per seed).
    test:        cfg -> (images, labels): the test set, never trained on.
    num_labels:  how many distinct labels the pool and test set have (the checks make
                 config.num_classes cover them).
    config_keys: data.* keys only this dataset reads, with their defaults (the checks
                 require them when this dataset is named).
    pool_size:   cfg -> (images, where that number comes from) when known without reading
                 any file, else None: lets the checks find a batch larger than the split.
    extra_test:  (cfg, name) -> (images, labels): a further test set named in
                 config.data.extra_tests; None if the dataset has none.
    extra_test_rule: name -> what is wrong with that extra test's name, or None if it is
                 fine (checked before any data is read).
    """

    pool: Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray | None]]
    test: Callable[[Any], Arrays]
    num_labels: int
    config_keys: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pool_size: Callable[[Any], tuple[int, str] | None] = lambda cfg: None
    extra_test: Callable[[Any, str], Arrays] | None = None
    extra_test_rule: Callable[[str], str | None] = lambda name: None


DATASETS: dict[str, Dataset] = {}


def register(name: str, dataset: Dataset) -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"data.register({name!r}, ...): needs a data.Dataset, not {dataset!r}")
    DATASETS[name] = dataset


def spec(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown config.data.name {name!r}: use {', '.join(DATASETS)}")
    return DATASETS[name]
