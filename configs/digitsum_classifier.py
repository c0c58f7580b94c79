r"""Digit sums: the CNN classifier (37 sums, cross-entropy, argmax), seeds 0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_classifier.py \
        --workdir ckpts/digitsum_classifier

The same network and data as the regressor, with a 37-way output layer.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum(arg)
    c.task = "classify"
    c.num_classes = 37
    c.original = "cnn_classifier"
    return defaults.smoke(c) if "smoke" in given else c
