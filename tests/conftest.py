"""Test defaults: MNIST from $JAXDIGITS_DATA_DIR, else the shared copy beside the repo."""

import os
import pathlib

SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

if not os.environ.get("JAXDIGITS_DATA_DIR") and SHARED_MNIST.is_dir():
    os.environ["JAXDIGITS_DATA_DIR"] = str(SHARED_MNIST)
