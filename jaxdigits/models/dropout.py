"""Dropout with nn.Dropout's masks, drawn faster on the CPU backend.

nn.Dropout draws its mask with jax.random.bernoulli. On XLA:CPU, JAX
lowers the Threefry hash behind it to a rolled while loop, whose every
round writes the whole array to memory, a large share of a training step.
The same hash written as plain jnp ops is fused by XLA into one loop, far
faster (figures in docs/speed.md), and bit for bit the same mask (tested),
so training gives the same numbers as with nn.Dropout.

The fast path needs what it reproduces: a threefry2x32 key and JAX's
default `jax_threefry_partitionable` bits (one hash per element). Other
key implementations, the other bits layout and other backends use
jax.random.bernoulli itself.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotate_left(v, r: int):
    return (v << np.uint32(r)) | (v >> np.uint32(32 - r))


def threefry2x32(k1, k2, x0, x1):
    """The Threefry-2x32 hash (20 rounds) of the counter pairs (x0, x1) under key (k1, k2)."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_key_data(key):
    """The two uint32 words of a threefry2x32 key (typed or raw), or None for another kind."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry2x32" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    if "threefry2x32" not in str(jax.config.jax_default_prng_impl):
        return None
    return key


def random_bits(key, shape):
    """jax.random.bits(key, shape) (uint32), or None where this module does not reproduce it."""
    data = _threefry_key_data(key)
    size = int(np.prod(shape))
    if data is None or data.shape != (2,) or not jax.config.jax_threefry_partitionable:
        return None
    if size >= 2**32:
        return None
    # The counters of element i are (0, i): the 64-bit index split into two words.
    lo = lax.iota(jnp.uint32, size).reshape(shape)
    hi, lo = threefry2x32(data[0], data[1], jnp.zeros_like(lo), lo)
    return hi ^ lo


def bernoulli(key, p: float, shape):
    """jax.random.bernoulli(key, p, shape), the fused hash on the CPU backend."""
    bits = random_bits(key, shape) if jax.default_backend() == "cpu" else None
    if bits is None:
        return jax.random.bernoulli(key, p, shape)
    # jax.random.uniform's float in [0, 1): 23 random mantissa bits under exponent 0.
    one = np.uint32(np.float32(1).view(np.uint32))
    uniform = lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - 1.0
    # Computed once: XLA would otherwise fuse the whole hash into each consumer of the mask
    # (the ReLU, the pooling's max and argmax, the backward), repeating it.
    return lax.optimization_barrier(uniform < p)


class Dropout(nn.Module):
    """nn.Dropout (same masks from the same keys), with the CPU-fast bernoulli."""

    rate: float
    deterministic: bool = False
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x):
        if self.deterministic or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        mask = bernoulli(self.make_rng(self.rng_collection), keep, x.shape)
        return lax.select(mask, x / keep, jnp.zeros_like(x))
