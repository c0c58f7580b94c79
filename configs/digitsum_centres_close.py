r"""Digit sums when the digits touch: digitsum_centres' kept run, trained 5 more epochs on
closed-up canvases. Seeds 0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_centres_close.py \
        --workdir ckpts/digitsum_centres_close

The study's canvases never show two digits closer than a few blank columns, and the
centre reader (models/sum_centres.py) keeps centres 3 columns (24 px) apart: touching digits
are read at 6 %. Here each seed starts from its own params of the 15-epoch run kept in
results/runs/digitsum_centres, allows centres 2 columns (16 px) apart, and trains on canvases
whose blank columns are dropped at random (pipeline.squeeze_columns: up to touching, never
over each other; no ink is removed, so the sum label still holds), with the learning rate
restarting at 1e-3 and decaying to 0 along a cosine. Sum labels only, as before.
"""

import pathlib

from jaxdigits import defaults

FIRST_STAGE = pathlib.Path(__file__).resolve().parents[1] / "results/runs/digitsum_centres"


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("digitsum_centres.py"), arg)
    c.init = str(FIRST_STAGE)
    c.centre_spacing = 2
    c.data.squeeze = True
    c.learning_rate = 1e-3
    c.num_epochs = 1 if c.num_epochs == 1 else 5  # :smoke keeps its one epoch
    return c
