r"""Digit sums from sum labels only, one shared digit reader per quarter: seeds 0, 10 and 42.

    python -m jaxdigits.train --config configs/digitsum_slots.py \
        --workdir ckpts/digitsum_slots

The study's data (30,000 generated canvases of four MNIST train digits,
80/20 split per seed, labels the sums), a network that knows the layout
(models/sum_slots.py: one digit reader shared by the four 42-px quarters,
their digit distributions convolved into the distribution of the sum),
cross-entropy on the sum, Adam 2e-3 with a cosine decay, batch 64, random
shifts of the whole canvas by up to 3 px (MNIST digits have a 4 px blank
margin, so no ink crosses into the next quarter). No per-digit labels, no
pretrained digit classifier, no extra data.
Besides the study's test set it is tested on the same digits at arbitrary
non-overlapping positions and on 3 and 5 digits (summary.json:
test_accuracy_anywhere-4, ...), where its fixed four slots do not fit.
"""

from jaxdigits import defaults


def get_config(arg=None):
    given = defaults.args(arg)
    c = defaults.digitsum_from_sums(arg)
    c.model = "sum_slots"
    c.learning_rate = 2e-3
    c.num_epochs = 15
    return defaults.smoke(c) if "smoke" in given else c
