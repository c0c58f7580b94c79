"""A digit-sum network that reads each slot of the canvas with one shared digit reader.

Input [B, H, W, 1] (pixels / 255; the study's canvases are 40x168). The
width is cut into `slots` equal slots (4 of 42 px: the study puts one digit
in each quarter). One reader, shared by all slots, gives each slot a
distribution over the digits 0..9: 3x3 convs 16, 32, 64, 128 with ReLU and
2x2 max-pools between them (receptive field 38 px), a max over the slot's
positions (a digit reads alike wherever it sits in its slot), a dense layer
and ten logits. The sum of the slots' digits, taken as independent, is
distributed as the convolution of their distributions
(`sum_columns.sum_log_probs`); the network returns those log-probabilities
over 0..num_classes-1, trained with cross-entropy on the sum alone: no
per-digit labels, no positions.

Unlike sum_columns it knows the layout: exactly one digit per slot. That
removes the ambiguity between "no digit here" and the digit 0 that holds
the column reader back, but a digit straddling two slots (the `anywhere`
test sets) is read by neither, and the number of digits is fixed.
`digits` gives the slots' digit logits, for per-digit accuracy.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import HE_INIT, conv, dense, max_pool
from jaxdigits.models.registry import Model
from jaxdigits.models.sum_columns import sum_log_probs


class SumSlots(nn.Module):
    num_classes: int = 46  # sums 0..45, as sum_columns: the extra test sets go up to 5 digits
    slots: int = 4
    features: tuple[int, ...] = (16, 32, 64, 128)
    hidden: int = 128
    pool: str = "max"  # over the slot's positions; "flatten" keeps them

    @nn.compact
    def digits(self, x, train: bool = False):
        """[B, H, W, 1] -> digit logits [B, slots, 10], slots left to right."""
        b, h, w, c = x.shape
        if w % self.slots:
            raise ValueError(f"sum_slots: width {w} is not a multiple of slots={self.slots}")
        # [B, H, slots, W/slots, C] -> [B * slots, H, W/slots, C]: one reader for every slot
        x = x.reshape(b, h, self.slots, w // self.slots, c).transpose(0, 2, 1, 3, 4)
        x = x.reshape(b * self.slots, h, w // self.slots, c)
        for i, features in enumerate(self.features):
            if i:
                x = max_pool(x)
            x = conv(features, (3, 3), x.shape[-1], padding=1, name=f"conv{i + 1}", **HE_INIT)(x)
            x = nn.relu(x)
        if self.pool == "max":
            x = jnp.max(x, axis=(1, 2))  # [B * slots, features]: any position in the slot
        else:
            x = x.reshape(x.shape[0], -1)
        x = nn.relu(dense(self.hidden, x.shape[-1], name="fc1", **HE_INIT)(x))
        x = Dropout(0.25, deterministic=not train)(x)
        logits = dense(10, self.hidden, name="fc2")(x)
        return logits.reshape(b, self.slots, 10)

    def __call__(self, x, train: bool = False):
        log_p = jax.nn.log_softmax(self.digits(x, train).astype(jnp.float32))
        return sum_log_probs(log_p, self.num_classes)


MODEL = Model(SumSlots)
