r"""Complementary labels with FixMatch-style self-training: part3_complementary_longer, continued.

    python -m jaxdigits.train --config configs/part3_complementary_strong.py \
        --workdir ckpts/part3_complementary_strong

Each seed (0, 10, 42) starts from its own last params of the 30-epoch run kept in
results/runs/part3_complementary_longer (99.00 % test) and trains 12 more epochs with the
same forward loss on the same 2-px-shifted view. The self-training term changes: the
pseudo-label (probability > 0.95, never the image's complementary label) still comes from
that view, but the prediction pushed towards it comes from a strongly augmented one
(rotation up to 20 degrees, translation up to 10 %, blur, noise: Part 1's augmentation), so
the network learns to keep its confident answers under distortion (FixMatch, Sohn et al.
2020). Learning rate 1e-3, cosine to 0; a fixed schedule: the last params are the result.
Every label it learns from is a wrong one.
"""

import pathlib

from jaxdigits import defaults

SECOND_STAGE = (
    pathlib.Path(__file__).resolve().parents[1] / "results/runs/part3_complementary_longer"
)


def get_config(arg=None):
    c = defaults.from_file(pathlib.Path(__file__).with_name("part3_complementary_longer.py"), arg)
    c.init = str(SECOND_STAGE)
    c.init_params = "last"
    c.loss.selftrain_view = "strong"
    c.data.rotation_deg = 20.0
    c.num_epochs = min(c.num_epochs, 12)  # the smoke config keeps its own
    return c
