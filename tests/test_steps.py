"""The eval program's decodes: the mean over one-pixel shifts of a test image."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits import defaults, models, steps
from jaxdigits.data import pipeline

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_one_pixel_shifts_are_the_image_and_its_eight_neighbours():
    image = np.zeros((1, 6, 7), np.uint8)
    image[0, 2, 3] = 9
    views = np.asarray(steps.one_pixel_shifts(jnp.asarray(image)))
    assert views.shape == (9, 1, 6, 7)
    where = [tuple(np.argwhere(v[0])[0]) for v in views]
    assert where[4] == (2, 3)  # the middle view is the image itself
    assert sorted(where) == [(2 + dy, 3 + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert all(v.sum() == 9 for v in views)


def test_shifts_decode_is_the_argmax_of_the_mean_probabilities():
    config = defaults.from_file(ROOT / "configs" / "part3_complementary_cnn.py", "smoke")
    config.seeds = (0, 1)
    model = models.build(config)
    params = jax.vmap(lambda k: steps.init_params(model, k, (28, 28)))(
        jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    )
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (40, 28, 28)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 10, 40), jnp.int32)
    idx = np.broadcast_to(np.arange(40), (2, 40))
    config.eval_batch_size = 16  # three batches, the last one padded
    evaluate = steps.make_evaluate(model, config, ("argmax", "shifts"))
    _, (argmax, shifts) = evaluate(params, {}, images, labels, idx, 33.0, 78.0)
    for s in range(2):
        one = jax.tree.map(lambda p, s=s: p[s], params)

        def probs(x, one=one):
            x = pipeline.preprocess(x, (28, 28), 33.0, 78.0)
            return jax.nn.softmax(model.apply({"params": one}, x), -1)

        views = steps.one_pixel_shifts(images)
        expected = np.argmax(np.mean([probs(v) for v in views], 0), -1)
        np.testing.assert_array_equal(shifts[s], expected)
        np.testing.assert_array_equal(argmax[s], np.argmax(probs(images), -1))
    assert not np.array_equal(argmax, shifts)  # random weights: the views do disagree
