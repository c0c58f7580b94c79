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

# He-normal weights and zero biases, for the networks that are not ports of the originals:
# torch's default is a third of the variance, and deep stacks of it start with weak signals.
HE_INIT = {"kernel_init": nn.initializers.he_normal(), "bias_init": nn.initializers.zeros}


def torch_uniform(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jax.numpy.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv(features: int, kernel_size, in_features: int, **kwargs) -> nn.Conv:
    """nn.Conv (NHWC, HWIO kernel) with torch's default initialisation (unless kwargs give
    other inits), computed by conv_general_dilated below."""
    fan_in = in_features * math.prod(kernel_size)
    init = torch_uniform(fan_in)
    kwargs = {"kernel_init": init, "bias_init": init, **kwargs}
    return nn.Conv(features, kernel_size, conv_general_dilated=conv_general_dilated, **kwargs)


NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs):
    """lax.conv_general_dilated, with gradients that XLA:CPU computes fast.

    On the CPU backend, a stride-1, undilated, ungrouped NHWC/HWIO
    convolution (every conv of these networks) goes through `_conv_nhwc`,
    whose gradients are themselves NHWC/HWIO convolutions. JAX's own
    transpose rules give the weight gradient a permuted dimension order
    (f01b_i01o->01bf). At the top level of a program XLA:CPU permutes such a
    convolution back into its library form, but inside a while loop (a
    rolled lax.scan, the trainer's epoch) it does not, and compiles it as a
    plain loop nest, far slower to run and to compile than `_conv_nhwc`
    (figures in docs/speed.md). A one-channel input is convolved forward
    as a sum of shifted copies (`_shifted_sum`). Same values; other
    backends and other convolutions use lax.conv_general_dilated itself.
    """
    pads = _plain_pads(lhs, rhs, window_strides, padding, kwargs)
    if pads is None or jax.default_backend() != "cpu":
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    return _conv_nhwc(lhs, rhs, pads, kwargs.get("precision"))


def _plain_pads(lhs, rhs, window_strides, padding, kwargs):
    """The ((top, bottom), (left, right)) padding of a stride-1, undilated, ungrouped NHWC/HWIO
    convolution padded by less than its kernel; None for any other."""
    kernel = rhs.shape[:2]
    if lhs.ndim != 4 or tuple(window_strides) != (1, 1):
        return None
    if any(tuple(kwargs.get(k) or (1, 1)) != (1, 1) for k in ("lhs_dilation", "rhs_dilation")):
        return None
    if kwargs.get("feature_group_count", 1) != 1 or kwargs.get("batch_group_count", 1) != 1:
        return None
    if kwargs.get("preferred_element_type") is not None:
        return None
    numbers = lambda dn: lax.conv_dimension_numbers(lhs.shape, rhs.shape, dn)  # noqa: E731
    if numbers(kwargs.get("dimension_numbers")) != numbers(NHWC):
        return None
    if padding in ("VALID", "SAME"):
        padding = lax.padtype_to_pads(lhs.shape[1:3], kernel, window_strides, padding)
    elif isinstance(padding, str):
        return None
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if not all(0 <= p < k for (lo, hi), k in zip(pads, kernel, strict=True) for p in (lo, hi)):
        return None
    return pads


def _conv(x, w, pads, precision):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=NHWC, precision=precision)


def _shifted_sum(x, w, pads):
    """The conv of a one-channel x as a sum of kh*kw shifted copies of x times a row of w:
    one fused loop, where XLA:CPU's convolution of one input channel is slow (figures in
    docs/speed.md)."""
    kh, kw = w.shape[:2]
    dtype = jnp.result_type(x.dtype, w.dtype)
    acc = jnp.promote_types(dtype, jnp.float32)  # bf16 inputs still sum in float32
    x = jnp.pad(x, ((0, 0), *pads, (0, 0))).astype(acc)
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    windows = (
        x[:, i : i + ho, j : j + wo] * w[i, j].astype(acc) for i in range(kh) for j in range(kw)
    )
    return functools.reduce(jnp.add, windows).astype(dtype)


def _forward(x, w, pads, precision):
    if x.shape[-1] == 1:
        return _shifted_sum(x, w, pads)
    return _conv(x, w, pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_nhwc(x, w, pads, precision):
    """Stride-1 conv of x [B, H, W, Ci] with w [kh, kw, Ci, Co], padded by pads."""
    return _forward(x, w, pads, precision)


def _conv_nhwc_fwd(x, w, pads, precision):
    return _forward(x, w, pads, precision), (x, w)


def _conv_nhwc_bwd(pads, precision, res, dy):
    x, w = res
    kh, kw = w.shape[:2]
    # dx: dy convolved with the flipped kernel, its in and out channels swapped.
    flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    (top, bottom), (left, right) = pads
    full = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
    dx = _conv(dy, flipped, full, precision)
    # dw: x as Ci images of B channels, convolved with dy as a [Ho, Wo, B, Co] kernel;
    # the output [Ci, kh, kw, Co] is w's layout permuted.
    dw = _conv(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), pads, precision)
    return dx, dw.transpose(1, 2, 0, 3)


_conv_nhwc.defvjp(_conv_nhwc_fwd, _conv_nhwc_bwd)


def dense(features: int, in_features: int, **kwargs) -> nn.Dense:
    """nn.Dense with torch's default initialisation (unless kwargs give other inits)."""
    init = torch_uniform(in_features)
    kwargs = {"kernel_init": init, "bias_init": init, **kwargs}
    return nn.Dense(features, **kwargs)


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
    for nn.max_pool's gradient is slower (figures in docs/speed.md).
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
    row, col = (lax.broadcasted_iota(jnp.int8, (2, 2), axis) for axis in (0, 1))
    position = 2 * row + col
    hit = first[:, :, None, :, None, :] == position[None, :, None, :, None]  # [B, Ho, 2, Wo, 2, C]
    g = jnp.where(hit, dy[:, :, None, :, None, :], jnp.zeros((), dy.dtype))
    g = g.reshape(b, 2 * ho, 2 * wo, c)
    return (jnp.pad(g, [(0, 0), (0, h - 2 * ho), (0, w - 2 * wo), (0, 0)]),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
