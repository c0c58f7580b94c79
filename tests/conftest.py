"""Test defaults: MNIST from $JAXDIGITS_DATA_DIR, else the shared copy beside the repo; JAX's
compilation cache on."""

import os
import pathlib

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

if not os.environ.get("JAXDIGITS_DATA_DIR") and SHARED_MNIST.is_dir():
    os.environ["JAXDIGITS_DATA_DIR"] = str(SHARED_MNIST)

# Compiled programs are cached on disk (jaxdigits/runtime/compile_cache.py), as for the trainer: the
# suite compiles the same smoke programs many times, and a second run reads them back.
from jaxdigits.runtime import compile_cache  # noqa: E402

compile_cache.setup()

# The longest files first: with the suite split over two processes a file at a time
# (pyproject's addopts), a long file started last would run on alone at the end.
FIRST = (  # by their summed test time in a cold run (docs/speed.md, 2026-12-03), longest first
    "test_gpu_check",
    "test_beyond",
    "test_digitsum_train",
    "test_interrupt",
    "test_checkpoint",
    "test_throughput",
    "test_tracking",
    "test_losses",
    "test_digitsum_models",
    "test_epochs",
    "test_trainer",
    "test_predict",
    "test_pipeline",
    "test_parallel",
    "test_steps",
    "test_teacher",
    "test_end_to_end",
    "test_packaging",
    "test_dropout",
    "test_fetch",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(FIRST)))  # stable sort
