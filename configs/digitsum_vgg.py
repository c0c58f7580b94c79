"""Digit sums: the VGG regressor on frozen torchvision VGG11 ImageNet features.

    python -m jaxdigits.train --config configs/digitsum_vgg.py --workdir ckpts/digitsum_vgg

Needs torchvision's IMAGENET1K_V1 weights (vgg11-8a719046.pth) in the torch
hub cache, or --config.vgg_weights=PATH; without them it stops with an
error rather than train on random features. The 1x1 conv and the head
train; the features are frozen in the optimizer.
"""

from jaxdigits import defaults, models


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum(arg)
    c.model = "vgg_regressor"
    c.update(models.spec(c.model).config_keys)  # vgg_weights: "" the torch hub cache; vgg_head
    c.eval_batch_size = 250
    c.original = "vgg_regressor"
    return defaults.smoke(c) if "smoke" in given else c
