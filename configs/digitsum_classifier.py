r"""Digit sums: the CNN classifier (37 sums, cross-entropy, argmax), seeds 0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_classifier.py \
        --workdir ckpts/digitsum_classifier

The same network and data as the regressor, with a 37-way output layer.
"""

from jaxdigits import configs as common


def get_config(arg=None):
    given = common.args(arg)
    c = common.digitsum(arg)
    c.task = "classify"
    c.num_classes = 37
    c.original = "cnn_classifier"
    return common.smoke(c) if "smoke" in given else c
