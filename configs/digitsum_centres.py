r"""Digit sums from sum labels only, a column reader that chooses the digits' centres: seeds
0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_centres.py \
        --workdir ckpts/digitsum_centres

The study's data (30,000 generated canvases of four MNIST train digits,
80/20 split per seed, labels the sums), a placement-free network
(models/sum_centres.py: sum_columns' trunk, each column a digit reading and
a centre score, the sum's distribution added up over every set of centres),
trained with cross-entropy on the sum and the study's count of four digits,
Adam 2e-3 with a cosine decay, batch 64, random shifts of the whole canvas
by up to 3 px. No per-digit labels, no pretrained digit classifier, no
extra data. Tested on the study's test set, on the same digits anywhere,
and on 3 and 5 digits, which it reads without being told how many.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum_from_sums(arg)
    c.model = "sum_centres"
    c.num_classes = 47  # sums 0..45 (five digits at most), then "not four digits"
    c.centre_spacing = 3  # columns (8 px each) between two digits' centres
    c.learning_rate = 2e-3
    c.num_epochs = 15
    return defaults.smoke(c) if "smoke" in given else c
