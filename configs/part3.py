"""Part 3: 5conv1fc on mislabeled MNIST (every label wrong), tested on real MNIST test.

    python -m jaxdigits.train --config configs/part3.py --workdir ckpts/part3
    python -m jaxdigits.train --config configs/part3.py:pretrained --workdir ckpts/part3_pretrained

From scratch: early-stopping patience 1, as the original. `:pretrained`
starts from Part 1's best params (ckpts/part1, or --config.init=RUN_DIR)
with Lightning's default patience 3, as the original's second run.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.mislabeled(arg)
    c.data.name = "mislabeled"
    c.data.mean, c.data.std = defaults.MISLABELED_NORM
    c.decodes = ("argmax", "argmin")  # the least likely class is the true one (docs/beyond.md)
    if "pretrained" in given:
        c.init = "ckpts/part1"
        c.patience = 3
    return defaults.smoke(c) if "smoke" in given else c
