r"""Digit sums: the CNN regressor (MSE, rounded prediction), seeds 0, 10 and 42 in one program.

    python -m jaxdigits.train --config configs/digitsum_regressor.py \
        --workdir ckpts/digitsum_regressor

Data: 30,000 generated 40x168 canvases of four MNIST train digits (or the
original's six .npy files with --config.data.path=DIR), 80/20 split per
seed; test: 10,000 canvases of MNIST test digits.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum(arg)
    c.original = "cnn_regressor"
    return defaults.smoke(c) if "smoke" in given else c
