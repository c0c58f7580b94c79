"""A digit-sum network that reads the canvas column by column and adds up what it reads.

Input [B, H, W, 1] (pixels / 255; the study's canvases are 40x168, W a
multiple of 8). A fully convolutional trunk (3x3 convs 16, 32, 64 with
ReLU and 2x2 max-pools, then a 3x3 conv 128: receptive field 38 px, one
output column per 8 px) is max-pooled over the height, so that a digit
reads alike at any vertical offset (exactly the same at any horizontal
offset that is a multiple of 8 px). A small head gives each column a
distribution over the values 0..9 that it adds to the sum (a column
without a digit should say 0). Treating the columns as independent, the
distribution of the sum is their convolution (`sum_log_probs`), and the
network returns its log-probabilities over 0..num_classes-1, the last
value meaning "that or more". Trained with cross-entropy on the sum alone:
no per-digit labels, no positions.

Nothing in it knows where digits sit or how many there are: the same
weights read canvases with digits at any horizontal position and with 3
or 5 digits (num_classes must exceed the largest sum asked for).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import HE_INIT, conv, dense, max_pool
from jaxdigits.models.registry import Model

NEG = -1e9  # log(0), finite so that logsumexp's gradient stays finite
START_ZERO_LOGIT = 3.8  # initial bias of value 0 against 0 for the others


def sum_log_probs(log_p, num_sums: int):
    """log_p [B, C, V]: C independent values in 0..V-1 -> log P(sum) [B, num_sums].

    The support is cut at num_sums - 1, which collects all larger sums, so
    the result is exactly normalised. Computed in log space, one column at
    a time.
    """
    b, _, v = log_p.shape
    start = jnp.full((b, num_sums), NEG).at[:, 0].set(0.0)
    pad = jnp.full((b, v - 1), NEG)

    def add(dist, lp):
        padded = jnp.concatenate([pad, dist, pad], axis=1)  # [B, S + 2V - 2]
        n = num_sums + v - 1
        # shifted[:, s, j] = dist[s - j]: the sum is s when this column adds j
        shifted = jnp.stack([padded[:, v - 1 - j : v - 1 - j + n] for j in range(v)], -1)
        ext = jax.nn.logsumexp(shifted + lp[:, None, :], axis=-1)  # [B, S + V - 1]
        tail = jax.nn.logsumexp(ext[:, num_sums - 1 :], axis=-1, keepdims=True)
        return jnp.concatenate([ext[:, : num_sums - 1], tail], axis=1), None

    dist, _ = jax.lax.scan(add, start, jnp.swapaxes(log_p, 0, 1))
    return dist


def column_features(x, features: tuple[int, ...], top: int):
    """The trunk and first head layer, called inside a compact module (its params are the
    caller's conv1.., conv_top, head1): [B, H, W, 1] -> [B, W / 8, top], one column per 8 px."""
    for i, f in enumerate(features):
        x = conv(f, (3, 3), x.shape[-1], padding=1, name=f"conv{i + 1}", **HE_INIT)(x)
        x = max_pool(nn.relu(x))
    x = nn.relu(conv(top, (3, 3), x.shape[-1], padding=1, name="conv_top", **HE_INIT)(x))
    x = jnp.max(x, axis=1)  # [B, columns, top]: any vertical offset reads the same
    return nn.relu(dense(top, top, name="head1", **HE_INIT)(x))


class SumColumns(nn.Module):
    num_classes: int = 46  # sums 0..45: up to five digits
    features: tuple[int, ...] = (16, 32, 64)
    top: int = 128
    values: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = column_features(x, self.features, self.top)
        x = Dropout(0.25, deterministic=not train)(x)
        # Columns start out saying 0 with probability 0.83 (an expected sum of 18 over the 21
        # columns of a 168 px canvas): from uniform outputs (sums near 95) the network would
        # first saturate every column at 0, where the gradients of the other values vanish.
        zero_first = lambda key, shape, dtype: jnp.zeros(shape, dtype).at[0].set(START_ZERO_LOGIT)  # noqa: E731
        head = dense(self.values, self.top, name="head2", bias_init=zero_first)
        logits = head(x)  # [B, columns, 10]
        return sum_log_probs(jax.nn.log_softmax(logits.astype(jnp.float32)), self.num_classes)


MODEL = Model(SumColumns)
