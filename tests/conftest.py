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
