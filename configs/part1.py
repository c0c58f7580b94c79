"""Part 1: pretrain 5conv1fc on a small handwritten-digit set (not MNIST).

    python -m jaxdigits.train --config configs/part1.py --workdir ckpts/part1

Default data: scikit-learn's 8x8 digits, upscaled to 90x120; the original's
photo folders (Sample001..Sample010) with --config.data.path=DIR.
Augmented as the original (blur, rotation 30, noise 0.1, translation 10 %),
85/15 train/val split, Lightning's default patience 3.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.mislabeled(arg)
    c.data.name = "digits"
    c.data.val_fraction = 0.15
    c.data.mean, c.data.std = defaults.PHOTO_NORM
    c.data.augment = True
    c.patience = 3
    return defaults.smoke(c) if "smoke" in given else c
