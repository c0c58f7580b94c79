"""Part 2: 5conv1fc on clean MNIST, from scratch or (`:pretrained`) from Part 1.

python -m jaxdigits.train --config configs/part2.py --workdir ckpts/part2
"""

from jaxdigits import configs as common


def get_config(arg=None):
    given = common.args(arg)
    c = common.base(arg)
    c.data.name = "mnist"
    if "pretrained" in given:
        c.init = "ckpts/part1"
        c.patience = 3
    return common.smoke(c) if "smoke" in given else c
