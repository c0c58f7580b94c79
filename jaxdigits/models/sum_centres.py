"""A digit-sum network that reads the canvas column by column and chooses where the digits are.

sum_columns' trunk (one column per 8 px, receptive field 38 px, any
vertical offset alike) gives every column two readings: a digit
distribution over 0..9 and a score for "a digit is centred here". A
reading of the canvas is a set of centre columns, at least `spacing`
columns apart (digits are 28 px wide, so two centres are at least 3.5
columns apart), weighted by exp(the sum of their scores); the digits at
those columns, taken as independent, give the sum. `centre_sums` adds this
up over every such set in one pass along the columns (a semi-Markov
forward pass), into the joint distribution of (number of digits, sum).
Columns outside the chosen set say nothing, which is what sum_columns
lacked: there every column had to say 0 unless a digit sat under it.

Trained (train=True), it returns log P(sum = s and `train_digits` digits)
for s = 0..num_classes-2, and last log P(another number of digits): cross-
entropy on the sum is then the negative log-likelihood of the sum and of
the count the study always has (four), which pins down the scores'
absolute level. In eval mode it returns log P(sum), every count weighed by
its probability (the last entry log 0), so the same weights read canvases
of 3 or 5 digits at any horizontal position without being told how many.
No per-digit labels, no positions.
"""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import dense
from jaxdigits.models.registry import Model
from jaxdigits.models.sum_columns import NEG, column_features


def centre_sums(centre, digit_log_p, max_digits: int, num_sums: int, spacing: int):
    """Log weights [B, max_digits + 1, num_sums] of (count, sum) over the sets of centre
    columns at least `spacing` apart, of at most max_digits columns.

    centre [B, T]: each column's score; digit_log_p [B, T, V]: its digit's log-probabilities.
    A set weighs exp(sum of its scores); its digits' sum is distributed as the convolution of
    theirs. Normalise by the logsumexp over everything for probabilities. Sums must fit:
    num_sums > (V - 1) * max_digits.
    """
    b, _, v = digit_log_p.shape
    if num_sums <= (v - 1) * max_digits:
        raise ValueError(f"centre_sums: {num_sums} sums cannot hold {max_digits} digits")
    empty = jnp.full((b, max_digits + 1, num_sums), NEG).at[:, 0, 0].set(0.0)
    pad = jnp.full((b, max_digits, v - 1), NEG)

    def column(ring, inputs):
        score, log_p = inputs  # [B], [B, V]
        # placements among the columns before t - spacing + 1, then one more digit at t
        before = jnp.concatenate([pad, ring[0][:, :-1]], axis=-1)  # counts 0..K-1, sums shifted
        shifted = jnp.stack([before[..., v - 1 - j : v - 1 - j + num_sums] for j in range(v)], -1)
        added = jax.nn.logsumexp(shifted + log_p[:, None, None, :], axis=-1) + score[:, None, None]
        here = jnp.concatenate([jnp.full((b, 1, num_sums), NEG), added], axis=1)
        upto = jnp.logaddexp(ring[-1], here)  # with or without a centre at t
        return jnp.concatenate([ring[1:], upto[None]]), None

    ring = jnp.broadcast_to(empty, (spacing, *empty.shape))  # B_{t-spacing} .. B_{t-1}
    ring, _ = jax.lax.scan(column, ring, (centre.T, jnp.swapaxes(digit_log_p, 0, 1)))
    return ring[-1]


def best_centres(weights, k: int, spacing: int):
    """[B, T] column weights -> [B, k] int: the k columns, ascending and at least `spacing`
    apart, of the largest total weight. Exhaustive: a 168 px canvas has 21 columns, and the
    sets of four (a few thousand) fit in one gather."""
    t = weights.shape[1]
    sets = [c for c in itertools.combinations(range(t), k) if np.all(np.diff(c) >= spacing)]
    if not sets:
        raise ValueError(f"best_centres: {k} centres {spacing} apart do not fit in {t} columns")
    sets = jnp.asarray(np.array(sets, np.int32))
    return sets[jnp.argmax(weights[:, sets].sum(-1), axis=-1)]


class SumCentres(nn.Module):
    num_classes: int = 47  # sums 0..45 (up to five digits), then "another count" (training)
    features: tuple[int, ...] = (16, 32, 64)
    top: int = 128
    max_digits: int = 5
    spacing: int = 3
    train_digits: int = 4  # every training canvas of the study holds four digits

    @nn.compact
    def readings(self, x, train: bool = False):
        """[B, H, W, 1] -> (centre scores [B, T], digit logits [B, T, 10]), one per column."""
        x = column_features(x, self.features, self.top)
        x = Dropout(0.25, deterministic=not train)(x)
        digit_logits = dense(10, self.top, name="digit")(x).astype(jnp.float32)
        centre = dense(1, self.top, name="centre")(x)[..., 0].astype(jnp.float32)
        return centre, digit_logits

    def digits(self, x, train: bool = False):
        """Digit logits [B, train_digits, 10], left to right, at the most likely centres: the
        set of train_digits columns (spacing apart) of the largest sum of centre score plus
        its most likely digit's log-probability. For scoring only; training never reads it."""
        centre, digit_logits = self.readings(x, train)
        weights = centre + jnp.max(jax.nn.log_softmax(digit_logits), -1)
        cols = best_centres(weights, self.train_digits, self.spacing)
        return jnp.take_along_axis(digit_logits, cols[..., None], axis=1)

    def __call__(self, x, train: bool = False):
        centre, digit_logits = self.readings(x, train)
        num_sums = self.num_classes - 1
        joint = centre_sums(
            centre, jax.nn.log_softmax(digit_logits), self.max_digits, num_sums, self.spacing
        )
        log_z = jax.nn.logsumexp(joint, axis=(1, 2))[:, None]
        if train:
            with_count = joint[:, self.train_digits] - log_z  # log P(sum, train_digits digits)
            p_count = jnp.exp(jax.nn.logsumexp(with_count, axis=-1, keepdims=True))
            other = jnp.log(jnp.clip(1.0 - p_count, 1e-30))
            return jnp.concatenate([with_count, other], axis=-1)
        sums = jax.nn.logsumexp(joint, axis=1) - log_z
        return jnp.concatenate([sums, jnp.full_like(sums[:, :1], NEG)], axis=-1)


MODEL = Model(
    SumCentres,
    # columns between two centres (8 px each): 3 fits the study's digits, which never touch;
    # 2 lets touching digits' centres be read (configs/digitsum_centres_close.py)
    config_keys={"centre_spacing": 3},
    options=lambda config: {"spacing": config.get("centre_spacing", 3)},
)
