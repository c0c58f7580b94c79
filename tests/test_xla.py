"""xla.jit: convolutions compiled with the project's CPU options give plain jax.jit's values
and gradients, and leave YNNPACK (the speed is measured in bench/, not here)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax import lax

from jaxdigits import steps
from jaxdigits.models import layers
from jaxdigits.runtime import xla

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize(
    "shape,features,padding",
    [((4, 20, 30, 1), 8, 1), ((2, 12, 17, 16), 32, 0), ((2, 5, 21, 24), 8, 1)],
)
def test_xla_jit_conv_equals_jax_jit(shape, features, padding):
    """Values and both gradients of a conv compiled with the project's options match
    lax.conv_general_dilated under plain jax.jit."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, shape[-1], features)) / 10, jnp.float32)
    pads = [(padding, padding)] * 2

    def f(x, w):
        y = lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN)
        return jnp.sum(jnp.tanh(y)), y

    reference = jax.jit(jax.value_and_grad(f, (0, 1), has_aux=True))(x, w)
    ours = xla.jit(jax.value_and_grad(f, (0, 1), has_aux=True))(x, w)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), ours, reference
    )


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are for the CPU backend")
def test_cpu_convolutions_leave_ynnpack():
    """With the options, no convolution is compiled into a YNNPACK fusion (the slow path);
    if an XLA upgrade renames the option this fails rather than silently slowing down."""
    assert xla.compiler_options("cpu") == xla.CPU_OPTIONS
    x, w, dy = jnp.zeros((2, 12, 17, 16)), jnp.zeros((3, 3, 16, 32)), jnp.zeros((2, 10, 15, 32))

    def grads(x, w, dy):  # no reduction of a conv's output: YNNPACK may fuse one into it
        conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=DN)  # noqa: E731
        return jax.vjp(conv, x, w)[1](dy)

    hlo = xla.jit(grads).lower(x, w, dy).compile().as_text()
    assert hlo.count(" convolution(") >= 2  # forward and gradients, as XLA's own ops
    assert not [name for name in _ynn_bodies(hlo) if " convolution(" in _body(hlo, name)]


def _ynn_bodies(hlo):
    """Names of the computations that YNNPACK fusions call."""
    return [
        m.group(1)
        for line in hlo.splitlines()
        if "__ynn_fusion" in line and (m := re.search(r"calls=%([\w.\-]+)", line))
    ]


def _body(hlo, name):
    start = hlo.index(f"%{name} ")
    return hlo[start : hlo.index("\n}", start)]


class _Initialisers(nn.Module):
    """A layer with each initialiser the networks use."""

    @nn.compact
    def __call__(self, x, train=False):
        x = layers.conv(8, (3, 3), 1)(x)  # torch's uniform
        x = nn.Conv(16, (3, 3), **layers.HE_INIT)(x)
        return nn.Dense(4, kernel_init=nn.initializers.truncated_normal(0.02))(x)


@pytest.mark.slow  # two compiles of threefry: seconds on a cold cache
def test_a_program_run_once_initialises_the_same_bits_as_jit():
    """jit_once compiles at a lower LLVM level: the initial params must not move by an ulp
    (at -O0 they do), or runs would not repeat those made before."""
    init = jax.vmap(lambda k: steps.init_params(_Initialisers(), k, (12, 10)))
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 10)])
    ours, reference = xla.jit_once(init)(keys), jax.jit(init)(keys)
    jax.tree.map(np.testing.assert_array_equal, ours, reference)


def test_users_xla_flags_win(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{xla.YNN_OPTION}=")
    xla.compiler_options.cache_clear()
    try:
        assert xla.compiler_options("cpu") is None
    finally:
        monkeypatch.undo()
        xla.compiler_options.cache_clear()
    assert xla.compiler_options("gpu") is None
