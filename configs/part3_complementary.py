r"""Part 3 done right: 5conv1fc learns the true digits from the mislabeled set's wrong labels.

    python -m jaxdigits.train --config configs/part3_complementary.py \
        --workdir ckpts/part3_complementary

The original's network, input (90x120), optimizer (Adam 1e-3, L2 1e-4) and
batch (32); the labels are read as complementary labels (a class each image
is not) and trained with the forward-corrected loss -log(1 - p[label])
(`--config.loss.complementary=ure|nn|ga` for Ishida et al.'s unbiased
estimator, raw or corrected; see jaxdigits/losses.py). No class weights:
they up-weighted labels, which here name wrong classes. Early stopping
watches the validation forward loss, computed on wrong labels only; the
true labels are used for nothing but the MNIST test accuracy.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.mislabeled(arg)
    c.data.name = "mislabeled"
    c.data.mean, c.data.std = defaults.MISLABELED_NORM
    c.task = "complementary"
    c.loss.complementary = "forward"
    c.loss.class_weights = ()
    c.patience = 3
    return defaults.smoke(c) if "smoke" in given else c
