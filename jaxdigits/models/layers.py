"""Conv and Dense layers initialised as PyTorch's nn.Conv2d and nn.Linear.

torch draws weights from kaiming_uniform(a=sqrt(5)) and biases from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)); both reduce to U(-b, b) with
b = 1/sqrt(fan_in). Faithful reproductions start from that distribution.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


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


def _corners(x):
    """The four [B, H//2, W//2, C] strided views of the 2x2 windows (floor mode, as torch),
    in row-major window order."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    return [x[:, i:h:2, j:w:2] for i in (0, 1) for j in (0, 1)]


@jax.custom_vjp
def max_pool(x):
    """2x2 max-pool, stride 2, floor mode: nn.max_pool(x, (2, 2), (2, 2)) and torch's MaxPool2d(2).

    Same values and gradients (to the first maximum of a window, as both
    do), but built from the four strided views of the windows, and the
    gradient is a one-hot of the window position: XLA:CPU's select-and-scatter
    for nn.max_pool's gradient took 3x longer (165 vs 60 ms for a
    64x40x168x32 batch, jax 0.10.2, 2 cores).
    """
    return functools.reduce(jnp.maximum, _corners(x))


def _max_pool_fwd(x):
    corners = _corners(x)
    y = functools.reduce(jnp.maximum, corners)
    first = jnp.int8(3)
    for k in (2, 1, 0):
        first = jnp.where(corners[k] == y, jnp.int8(k), first)
    return y, (first, x.shape)


def _max_pool_bwd(res, dy):
    first, shape = res
    b, h, w, c = shape
    ho, wo = dy.shape[1], dy.shape[2]
    # Each input pixel's window position (0..3, row-major) against its window's first maximum.
    position = 2 * lax.broadcasted_iota(jnp.int8, (2, 2), 0) + lax.broadcasted_iota(
        jnp.int8, (2, 2), 1
    )
    hit = first[:, :, None, :, None, :] == position[None, :, None, :, None]  # [B, Ho, 2, Wo, 2, C]
    g = jnp.where(hit, dy[:, :, None, :, None, :], jnp.zeros((), dy.dtype))
    g = g.reshape(b, 2 * ho, 2 * wo, c)
    return (jnp.pad(g, [(0, 0), (0, h - 2 * ho), (0, w - 2 * wo), (0, 0)]),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
