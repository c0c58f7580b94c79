r"""Complementary labels to >= 99 % MNIST test: a stronger 28x28 network, seeds 0, 10, 42.

    python -m jaxdigits.train --config configs/part3_complementary_cnn.py \
        --workdir ckpts/part3_complementary_cnn

The mislabeled set at MNIST's own 28x28 (models/mnist_cnn.py), random
shifts of up to 2 px, batch 128, Adam 2e-3 with a cosine decay to 0 over
the epochs, the forward-corrected complementary loss, plus self-training:
images the network already calls some class with probability > 0.95
(never their complementary label) are also pushed towards that class
(losses.self_training). Every label it learns from is a wrong one; no
pretraining. Early stopping is off; the best checkpoint keeps the params
of the lowest validation forward loss.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.mislabeled(arg)
    c.model = "mnist_cnn"
    c.task = "complementary"
    c.loss.complementary = "forward"
    c.loss.selftrain_threshold = 0.95
    c.loss.selftrain_weight = 1.0
    c.seeds = (0, 10, 42)
    c.loss.class_weights = ()
    c.batch_size = 128
    c.learning_rate = 2e-3
    c.weight_decay = 0.0
    c.lr_schedule = "cosine"
    c.num_epochs = 15
    c.patience = 0
    d = c.data
    d.name = "mislabeled"
    d.image_size = (28, 28)
    d.mean, d.std = defaults.MISLABELED_NORM
    d.test_mean, d.test_std = defaults.MISLABELED_NORM
    d.shift = 2
    return defaults.smoke(c) if "smoke" in given else c
