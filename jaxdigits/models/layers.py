"""Conv and Dense layers initialised as PyTorch's nn.Conv2d and nn.Linear.

torch draws weights from kaiming_uniform(a=sqrt(5)) and biases from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)); both reduce to U(-b, b) with
b = 1/sqrt(fan_in). Faithful reproductions start from that distribution.
"""

import math

import flax.linen as nn
import jax


def torch_uniform(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jax.numpy.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv(features: int, kernel_size, in_features: int, **kwargs) -> nn.Conv:
    """nn.Conv (NHWC, HWIO kernel) with torch's default initialisation."""
    fan_in = in_features * math.prod(kernel_size)
    init = torch_uniform(fan_in)
    return nn.Conv(features, kernel_size, kernel_init=init, bias_init=init, **kwargs)


def dense(features: int, in_features: int, **kwargs) -> nn.Dense:
    """nn.Dense with torch's default initialisation."""
    init = torch_uniform(in_features)
    return nn.Dense(features, kernel_init=init, bias_init=init, **kwargs)
