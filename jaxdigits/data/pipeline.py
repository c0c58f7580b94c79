"""Device-side pipeline: split, resize, normalise and augment uint8 batches.

The uint8 images go to the device once at their native size (28x28 for
MNIST); every batch is gathered, resized to the network's input size and
normalised inside the jitted step, so no host work runs per step.
"""

import jax
import jax.numpy as jnp
import numpy as np


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random train/validation split of range(n), fixed by `seed`."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]).astype(np.int32), np.sort(order[:n_val]).astype(np.int32)


def preprocess(images, size, mean, std):
    """uint8 [B, h, w] -> float32 [B, H, W, 1]: bilinear resize, then (x - mean) / std.

    `mean` and `std` are on the 0..255 scale.
    """
    x = images.astype(jnp.float32)
    if x.shape[1:] != tuple(size):
        x = jax.image.resize(x, (x.shape[0], *size), method="bilinear")
    return ((x - mean) / std)[..., None]


def random_shift(key, images, max_shift: int):
    """Shifts each uint8 image [B, h, w] by a random whole number of pixels in -max_shift..
    max_shift along each axis, filling with 0 (the background of these images)."""
    b, h, w = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    starts = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
    crop = lambda im, s: jax.lax.dynamic_slice(im, (s[0], s[1]), (h, w))  # noqa: E731
    return jax.vmap(crop)(padded, starts)


def squeeze_columns(key, images):
    """Closes up each uint8 image [B, h, w] horizontally: drops a random share (uniform in
    0..1 per image) of its blank columns, then puts what is left at a random horizontal
    position, filling with 0. Digits move closer, up to touching, and no ink is lost, so a
    label that counts or adds up the digits still holds."""
    b, h, w = images.shape
    k_share, k_drop, k_pos = jax.random.split(key, 3)
    blank = ~jnp.any(images > 0, axis=1)  # [B, w]
    share = jax.random.uniform(k_share, (b, 1))
    keep = ~blank | (jax.random.uniform(k_drop, (b, w)) >= share)
    offset = jax.random.randint(k_pos, (b,), 0, w - keep.sum(1) + 1)
    # kept columns go left to right from the offset; dropped ones to a spare column w
    to = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1 + offset[:, None], w)
    out = jnp.zeros((b, h, w + 1), images.dtype)
    out = jax.vmap(lambda o, t, im: o.at[:, t].set(im))(out, to, images)
    return out[:, :, :w]


def _affine(image, angle, shift):
    """Rotates `image` [H, W] by `angle` (radians) about its centre and shifts it by `shift`."""
    h, w = image.shape
    yy, xx = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cy, cx = (h - 1) / 2, (w - 1) / 2
    y, x = yy - cy - shift[0], xx - cx - shift[1]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src = jnp.stack([cos * y - sin * x + cy, sin * y + cos * x + cx])
    return jax.scipy.ndimage.map_coordinates(image, list(src), order=1, mode="constant", cval=0.0)


def _blur3(image, sigma):
    """3x3 Gaussian blur with reflect padding, as torchvision's GaussianBlur(3)."""
    k = jnp.exp(-jnp.array([1.0, 0.0, 1.0]) / (2 * sigma**2))
    k = k / k.sum()
    padded = jnp.pad(image, 1, mode="reflect")
    h, w = image.shape
    rows = sum(k[i] * padded[i : i + h, :] for i in range(3))
    return sum(k[j] * rows[:, j : j + w] for j in range(3))


def augment(key, images, *, rotation_deg, translate, noise_std, mean, std):
    """The Part 1 augmentation on float [B, H, W] images (0..255), returns normalised [B,H,W,1].

    Random rotation (+-rotation_deg) and translation (+-translate of the size),
    a 3x3 Gaussian blur with sigma in [0.1, 2], normalisation, then additive
    Gaussian noise with std `noise_std` in normalised units.
    """
    b, h, w = images.shape
    k_angle, k_shift, k_sigma, k_noise = jax.random.split(key, 4)
    angle = jnp.deg2rad(
        jax.random.uniform(k_angle, (b,), minval=-rotation_deg, maxval=rotation_deg)
    )
    shift = jax.random.uniform(k_shift, (b, 2), minval=-translate, maxval=translate)
    shift = shift * jnp.array([h, w], jnp.float32)
    sigma = jax.random.uniform(k_sigma, (b,), minval=0.1, maxval=2.0)
    x = jax.vmap(_affine)(images, angle, shift)
    x = jax.vmap(_blur3)(x, sigma)
    x = (x - mean) / std
    x = x + noise_std * jax.random.normal(k_noise, x.shape)
    return x[..., None]
