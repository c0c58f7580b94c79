"""layers.conv_general_dilated, the convolution of every conv layer: the values and gradients
of lax.conv_general_dilated, computed on the CPU backend by convolutions that XLA:CPU keeps
on its library path inside loops (the speed is measured in bench/, not here)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxdigits.models import layers
from jaxdigits.runtime import xla

NHWC = layers.NHWC
on_cpu = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="the rewritten gradients are for the CPU backend"
)


def _data(x_shape, w_shape, dtype=jnp.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=x_shape), dtype)
    w = jnp.asarray(rng.normal(size=w_shape) / np.sqrt(np.prod(w_shape[:3])), dtype)
    return x, w


def _value_and_grads(conv, x, w, **kwargs):
    def f(x, w):
        y = conv(x, w, (1, 1), kwargs.pop("padding", "VALID"), dimension_numbers=NHWC, **kwargs)
        return jnp.sum(jnp.sin(y)), y

    return jax.jit(jax.value_and_grad(f, (0, 1), has_aux=True))(x, w)


def _uses_rewrite(x, w, padding, strides=(1, 1), dimension_numbers=NHWC, **kwargs):
    conv = lambda x, w: layers.conv_general_dilated(  # noqa: E731
        x, w, strides, padding, dimension_numbers=dimension_numbers, **kwargs
    )
    jaxpr = jax.make_jaxpr(conv)(x, w)
    return "custom_vjp" in str(jaxpr)


CASES = [
    ((2, 12, 17, 3), (3, 3, 3, 8), "VALID"),
    ((2, 9, 10, 4), (3, 3, 4, 6), [(1, 1), (1, 1)]),
    ((1, 7, 8, 2), (3, 3, 2, 5), [(0, 2), (1, 0)]),
    ((2, 6, 7, 5), (1, 1, 5, 3), "VALID"),
    ((2, 8, 9, 3), (5, 3, 3, 4), "SAME"),
    # one input channel: computed as a sum of shifted copies of the input
    ((3, 10, 11, 1), (3, 3, 1, 16), "VALID"),
    ((2, 9, 10, 1), (3, 3, 1, 6), [(1, 1), (1, 1)]),
    ((2, 6, 7, 1), (1, 1, 1, 3), "VALID"),
]


@on_cpu
@pytest.mark.parametrize("x_shape,w_shape,padding", CASES)
def test_values_and_gradients_equal_lax(x_shape, w_shape, padding):
    x, w = _data(x_shape, w_shape)
    assert _uses_rewrite(x, w, padding)
    ours = _value_and_grads(layers.conv_general_dilated, x, w, padding=padding)
    reference = _value_and_grads(lax.conv_general_dilated, x, w, padding=padding)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
    jax.tree.map(close, ours, reference)


@on_cpu
@pytest.mark.parametrize("channels", [4, 1])
def test_bfloat16_gradients_stay_bfloat16_and_close(channels):
    x, w = _data((2, 9, 10, channels), (3, 3, channels, 6), jnp.bfloat16)
    (_, y), grads = _value_and_grads(layers.conv_general_dilated, x, w, padding=[(1, 1)] * 2)
    (_, y_ref), grads_ref = _value_and_grads(lax.conv_general_dilated, x, w, padding=[(1, 1)] * 2)
    assert y.dtype == grads[0].dtype == grads[1].dtype == jnp.bfloat16
    for a, b in zip((y, *grads), (y_ref, *grads_ref), strict=True):
        np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_strides": (2, 2)},
        {"rhs_dilation": (2, 2)},
        {"lhs_dilation": (1, 2), "padding": [(0, 0), (1, 1)]},
        {"padding": [(3, 3), (0, 0)]},  # padded by more than the kernel
        {"padding": [(-1, 0), (0, 0)]},
        {"feature_group_count": 2},
    ],
)
def test_other_convolutions_are_lax_itself(kwargs):
    """What the rewrite does not cover falls back to lax.conv_general_dilated, unchanged."""
    x, w = _data((2, 9, 10, 4), (3, 3, 4 // kwargs.get("feature_group_count", 1), 6))
    strides, padding = kwargs.pop("window_strides", (1, 1)), kwargs.pop("padding", "VALID")
    assert not _uses_rewrite(x, w, padding, strides, **kwargs)
    args = (x, w, strides, padding)
    ours = layers.conv_general_dilated(*args, dimension_numbers=NHWC, **kwargs)
    np.testing.assert_array_equal(
        ours, lax.conv_general_dilated(*args, dimension_numbers=NHWC, **kwargs)
    )


def test_nchw_is_lax_itself():
    x, w = _data((2, 4, 9, 10), (6, 4, 3, 3))
    assert not _uses_rewrite(x, w, "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))


@on_cpu
def test_gradients_in_a_rolled_loop_stay_library_convolutions():
    """Inside a while loop (a rolled lax.scan) every convolution of the gradient keeps the
    dimension order of XLA:CPU's library convolution (b01f_01io->b01f). JAX's own weight
    gradient there has f01b_i01o->01bf, which XLA:CPU compiled as a plain loop nest, 50x
    slower (jax 0.10.2). The loop's results equal lax's."""
    x, w = _data((2, 12, 17, 4), (3, 3, 4, 8))

    def train(conv):
        def body(carry, _):
            x, w = carry

            def loss(x, w):
                return jnp.sum(jnp.tanh(conv(x, w, (1, 1), [(1, 1)] * 2, dimension_numbers=NHWC)))

            gx, gw = jax.grad(loss, (0, 1))(x, w)
            return (x - 0.1 * gx, w - 0.1 * gw), None

        return xla.jit(lambda xw: lax.scan(body, xw, None, length=3)[0])

    ours = train(layers.conv_general_dilated)
    hlo = ours.lower((x, w)).compile().as_text()
    labels = re.findall(r" convolution\(.*?dim_labels=(\S+?),", hlo)
    assert len(labels) == 3  # forward, input gradient, weight gradient
    assert set(labels) == {"b01f_01io->b01f"}
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
    jax.tree.map(close, ours((x, w)), train(lax.conv_general_dilated)((x, w)))
