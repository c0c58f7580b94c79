"""Part 2: 5conv1fc on clean MNIST, from scratch or (`:pretrained`) from Part 1.

python -m jaxdigits.train --config configs/part2.py --workdir ckpts/part2
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.mislabeled(arg)
    c.data.name = "mnist"
    if "pretrained" in given:
        c.init = "ckpts/part1"
        c.patience = 3
    return defaults.smoke(c) if "smoke" in given else c
