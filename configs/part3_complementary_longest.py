r"""Complementary labels, 15 more epochs again: part3_complementary_longer's kept run, continued.

    python -m jaxdigits.train --config configs/part3_complementary_longest.py \
        --workdir ckpts/part3_complementary_longest

As part3_complementary_longer, one stage further: each seed (0, 10, 42) starts from its own
best params of the 30-epoch run kept in results/runs/part3_complementary_longer and trains
15 more epochs with the same loss, shifts and batch, the learning rate restarting at 5e-4
and decaying to 0 along a cosine: 45 epochs in all, every label a wrong one.
"""

import pathlib

from jaxdigits import defaults

SECOND_STAGE = (
    pathlib.Path(__file__).resolve().parents[1] / "results/runs/part3_complementary_longer"
)


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("part3_complementary_longer.py"), arg)
    c.init = str(SECOND_STAGE)
    c.learning_rate = 5e-4
    return c
