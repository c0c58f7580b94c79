"""The training step's strong view (FixMatch-style self-training) and the eval program's
decodes: the mean over one-pixel shifts of a test image."""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdigits import defaults, losses, models, steps
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


@pytest.mark.slow
def test_shifts_decode_is_the_argmax_of_the_mean_probabilities():
    config = defaults.from_file(ROOT / "configs" / "part3_complementary_cnn.py", "smoke")
    config.seeds = (0, 1)
    model = models.build(config)
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    params = steps.init_seeds(model, keys, (28, 28))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (40, 28, 28)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 10, 40), jnp.int32)
    idx = np.broadcast_to(np.arange(40), (2, 40))
    config.eval_batch_size = 16  # three batches, the last one padded
    evaluate = steps.make_evaluate(model, config, ("argmax", "shifts"))
    _, (argmax, shifts) = evaluate(params, {}, images, labels, idx, 33.0, 78.0)
    for s in range(2):
        one = jax.tree.map(lambda p, s=s: p[s], params)

        @jax.jit  # one program, not op by op
        def probs(x, one=one):
            x = pipeline.preprocess(x, (28, 28), 33.0, 78.0)
            return jax.nn.softmax(model.apply({"params": one}, x), -1)

        views = steps.one_pixel_shifts(images)
        expected = np.argmax(np.mean([probs(v) for v in views], 0), -1)
        np.testing.assert_array_equal(shifts[s], expected)
        np.testing.assert_array_equal(argmax[s], np.argmax(probs(images), -1))
    assert not np.array_equal(argmax, shifts)  # random weights: the views do disagree


@pytest.mark.slow
def test_a_strong_view_step_pushes_the_augmented_view_towards_the_training_views_labels():
    """With loss.selftrain_view "strong" one step's loss is the forward loss of the training
    view plus self-training whose pseudo-labels come from that view and whose predictions
    come from the strongly augmented one; its gradient is that of this sum."""
    config = defaults.from_file(ROOT / "configs" / "part3_complementary_strong.py", "smoke")
    config.loss.selftrain_threshold = 0.2  # random weights: some predictions pass it
    config.data.shift = 0
    model = models.build(config)
    params = steps.init_seeds(model, jax.random.PRNGKey(0)[None], (28, 28))
    params = jax.tree.map(lambda p: p[0], params)  # one seed
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (16, 28, 28)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 10, 16), jnp.int32)
    tx = optax.sgd(1.0)
    state = {"params": params, "opt_state": tx.init(params)}
    key = jax.random.PRNGKey(3)

    def step(cfg):
        fn = functools.partial(steps.train_step, model=model, tx=tx, cfg=cfg)
        return jax.jit(fn)(state, {}, images, labels, jnp.arange(16), key)

    new, metrics = step(config)
    k_aug, k_dropout = jax.random.split(key)
    weak = pipeline.preprocess(images, (28, 28), config.data.mean, config.data.std)
    strong = steps._augmented(jax.random.fold_in(k_aug, 1), images, config)
    assert not np.allclose(weak, strong)

    def loss_fn(p):
        out = model.apply(
            {"params": p}, jnp.concatenate([weak, strong]), train=True, rngs={"dropout": k_dropout}
        )
        w, s = out[:16], out[16:]
        total = losses.complementary_forward(w, labels)
        return total + losses.self_training(w, labels, 0.2, student_logits=s)

    expected, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
    same = dict(config.loss.to_dict(), selftrain_view="same")
    config.loss.update(same)
    _, plain = step(config)
    assert abs(float(plain["loss"]) - float(expected)) > 1e-4  # the views do differ
    step = jax.tree.map(lambda a, b: a - b, params, new["params"])  # sgd(1): the gradient
    for got, want in zip(jax.tree.leaves(step), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
