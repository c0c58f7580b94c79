"""The digit-sum study's CNN regressor and classifier, layer for layer.

Input [B, 40, 168, 1] (pixels / 255). conv 1->32 (3x3, pad 1) ReLU
MaxPool 2; conv 32->64 (3x3, pad 1) ReLU MaxPool 2; flatten 10x42x64 ->
Linear 256 ReLU -> Linear 128 ReLU -> Linear `num_classes`: 1 for the
regressor (MSE, rounded output), 37 for the classifier (sums 0..36).
"""

import flax.linen as nn

from jaxdigits.models.layers import conv, dense, max_pool
from jaxdigits.models.registry import Model


class SumCNN(nn.Module):
    num_classes: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no dropout in these networks
        for i, features in enumerate((32, 64)):
            x = conv(features, (3, 3), x.shape[-1], padding=1, name=f"conv{i + 1}")(x)
            x = max_pool(nn.relu(x))
        x = x.reshape(x.shape[0], -1)
        for i, features in enumerate((256, 128)):
            x = nn.relu(dense(features, x.shape[-1], name=f"fc{i + 1}")(x))
        return dense(self.num_classes, x.shape[-1], name="fc3")(x)


MODEL = Model(SumCNN)
