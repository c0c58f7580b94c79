"""The "5conv1fc" network of the mislabeled-MNIST study, layer for layer.

Input [B, 90, 120, 1]. Five 3x3 VALID convs (16, 32, 64, 128, 256), each
followed by ReLU and element-wise dropout (0.8 after the first, 0.5 after
the others) and, for the first four, a 2x2 max-pool; then one Linear from
the 1x3x256 feature map to the classes. Initialised as torch initialises
nn.Conv2d / nn.Linear, so that training starts from the same distribution.
"""

import flax.linen as nn

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import conv, dense, max_pool
from jaxdigits.models.registry import Model


class FiveConv(nn.Module):
    num_classes: int = 10
    features: tuple[int, ...] = (16, 32, 64, 128, 256)
    dropout_rates: tuple[float, ...] = (0.8, 0.5, 0.5, 0.5, 0.5)

    @nn.compact
    def __call__(self, x, train: bool = False):
        last = len(self.features) - 1
        for i, (features, rate) in enumerate(zip(self.features, self.dropout_rates, strict=True)):
            x = conv(features, (3, 3), x.shape[-1], padding="VALID", name=f"conv{i + 1}")(x)
            x = nn.relu(x)
            x = Dropout(rate, deterministic=not train)(x)
            if i < last:
                x = max_pool(x)
        x = x.reshape(x.shape[0], -1)
        return dense(self.num_classes, x.shape[-1], name="fc")(x)


MODEL = Model(FiveConv)
