r"""Complementary labels, 15 more epochs: part3_complementary_cnn's kept run, continued.

    python -m jaxdigits.train --config configs/part3_complementary_longer.py \
        --workdir ckpts/part3_complementary_longer

Each seed (0, 10, 42) starts from its own best params of the 15-epoch run kept in
results/runs/part3_complementary_cnn (the forward loss plus self-training, which was still
improving when its cosine reached 0) and trains 15 more epochs with the same loss, shifts and
batch, the learning rate restarting at 1e-3 and decaying to 0 along a cosine. 30 epochs in
all; every label it learns from is a wrong one. A fixed schedule: the test accuracy is that
of the last params; the lowest validation forward loss picks the "best" ones beside them.
It is also tested on the mean probabilities over each test image and its 8 one-pixel shifts.
"""

import pathlib

from jaxdigits import defaults

FIRST_STAGE = pathlib.Path(__file__).resolve().parents[1] / "results/runs/part3_complementary_cnn"


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("part3_complementary_cnn.py"), arg)
    c.init = str(FIRST_STAGE)
    c.learning_rate = 1e-3
    c.decodes = ("argmax", "shifts")  # also the mean over the 9 one-pixel shifts of an image
    return c
