r"""Digit sums from sum labels only, read column by column: seeds 0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_columns.py \
        --workdir ckpts/digitsum_columns

The study's data (30,000 generated canvases of four MNIST train digits,
80/20 split per seed, labels the sums), a placement-free network
(models/sum_columns.py: per-column digit-value distributions, convolved
into the distribution of the sum), cross-entropy on the sum plus 0.1 times
the squared error of the expected sum (losses.expected_mse: a dense signal
that gets the columns started), Adam 1e-3 with a cosine decay, batch 64,
random shifts of the whole canvas by up to 3 px. No per-digit labels, no
pretrained digit classifier, no extra data.
Besides the study's test set (four MNIST test digits, one per quarter) it
is tested on the same digits at arbitrary non-overlapping positions and on
canvases of 3 and 5 digits (summary.json: test_accuracy_anywhere-4, ...).
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum_from_sums(arg)
    c.model = "sum_columns"
    c.loss.expected_mse_weight = 0.1
    c.num_epochs = 12
    return defaults.smoke(c) if "smoke" in given else c
