"""models.dropout: the CPU-fast dropout draws nn.Dropout's masks bit for bit, so training
gives the same numbers (its speed is measured in bench/, not here)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdigits import models
from jaxdigits.models import dropout


@pytest.mark.parametrize("shape", [(3, 7, 5, 2), (1,), (4, 33)])
@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key], ids=["raw", "typed"])
def test_random_bits_equal_jax(shape, make_key):
    key = make_key(7)
    bits = jax.jit(lambda k: dropout.random_bits(k, shape))(key)
    np.testing.assert_array_equal(bits, jax.random.bits(key, shape))


@pytest.mark.parametrize("rate", [0.8, 0.5, 0.1])
@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key], ids=["raw", "typed"])
def test_dropout_masks_equal_flax(rate, make_key):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 9, 11, 3)), jnp.float32)
    rngs = {"dropout": make_key(3)}
    ours = dropout.Dropout(rate).apply({}, x, rngs=rngs)
    theirs = nn.Dropout(rate, deterministic=False).apply({}, x, rngs=rngs)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < float(jnp.mean(ours == 0)) < 1


def test_dropout_edge_rates_and_eval():
    x = jnp.ones((2, 5))
    rngs = {"dropout": jax.random.PRNGKey(0)}
    np.testing.assert_array_equal(dropout.Dropout(0.5, deterministic=True).apply({}, x), x)
    np.testing.assert_array_equal(dropout.Dropout(0.0).apply({}, x, rngs=rngs), x)
    np.testing.assert_array_equal(dropout.Dropout(1.0).apply({}, x, rngs=rngs), 0 * x)


def test_other_key_kinds_fall_back_to_jax():
    """An rbg key is not reproduced by the fused hash: bernoulli is jax's own."""
    key = jax.random.key(1, impl="rbg")
    assert dropout.random_bits(key, (3, 4)) is None
    np.testing.assert_array_equal(
        dropout.bernoulli(key, 0.3, (50,)), jax.random.bernoulli(key, 0.3, (50,))
    )


@pytest.mark.slow
def test_five_conv_trains_as_with_flax_dropout(monkeypatch):
    """The whole training forward and gradient equal those of the model with nn.Dropout."""
    model = models.get("five_conv")
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 90, 120, 1)), jnp.float32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]  # one program

    def loss(p):
        out = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.PRNGKey(4)})
        return jnp.sum(out**2)

    # jitted, each traced anew: op by op the forward and backward take a minute on a CPU
    ours = jax.jit(jax.value_and_grad(loss))(params)
    from jaxdigits.models import five_conv

    monkeypatch.setattr(five_conv, "Dropout", nn.Dropout)
    theirs = jax.jit(jax.value_and_grad(loss))(params)
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)
