"""A small CNN for 28x28 MNIST, stronger and 3x cheaper than 5conv1fc at 90x120.

Input [B, 28, 28, 1] (MNIST's own size, no resize). Two blocks of two 3x3
VALID convs (32, 32; 64, 64) with ReLU, each block followed by a 2x2
max-pool; dropout 0.25 after each block; Linear 1024 -> 128, ReLU,
dropout 0.5, Linear 128 -> classes: close to the Keras mnist_cnn example
(3x3 convs of 32 and 64, one max-pool, Linear 128; 99.25 % reported with
true labels, no augmentation). Here it learns from complementary labels
(configs/part3_complementary_cnn.py). He-normal weights and zero biases:
the complementary loss's gradients are weak at the start, and torch's
smaller default initialisation learnt more slowly.
"""

import flax.linen as nn

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import HE_INIT, conv, dense, max_pool
from jaxdigits.models.registry import Model


class MnistCNN(nn.Module):
    num_classes: int = 10
    blocks: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64))
    hidden: int = 128

    @nn.compact
    def __call__(self, x, train: bool = False):
        for b, block in enumerate(self.blocks):
            for i, features in enumerate(block):
                name = f"conv{b + 1}_{i + 1}"
                layer = conv(features, (3, 3), x.shape[-1], padding="VALID", name=name, **HE_INIT)
                x = nn.relu(layer(x))
            x = Dropout(0.25, deterministic=not train)(max_pool(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(dense(self.hidden, x.shape[-1], name="fc1", **HE_INIT)(x))
        x = Dropout(0.5, deterministic=not train)(x)
        return dense(self.num_classes, self.hidden, name="fc2")(x)


MODEL = Model(MnistCNN)
