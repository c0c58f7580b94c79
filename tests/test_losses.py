"""Complementary-label losses, argmin decoding and the expected-value term, on small problems."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdigits import losses

K = 10


def _logits(n=32, seed=0, scale=3.0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, K)) * scale


def _comp(true, seed=0):
    offset = np.random.default_rng(seed).integers(1, K, size=len(true))
    return jnp.asarray((true + offset) % K)


def test_forward_loss_is_minus_log_one_minus_p():
    logits = _logits()
    comp = np.arange(32) % K
    p = np.asarray(jax.nn.softmax(logits))[np.arange(32), comp]
    np.testing.assert_allclose(
        jax.jit(losses.complementary_forward)(logits, comp), np.mean(-np.log1p(-p)), rtol=1e-5
    )


def test_forward_loss_and_gradient_stay_finite_when_the_wrong_class_is_certain():
    logits = jnp.zeros((2, K)).at[:, 3].set(200.0)
    comp = jnp.array([3, 3])
    value, grad = jax.value_and_grad(losses.complementary_forward)(logits, comp)
    assert np.isfinite(value) and value > 100
    assert np.all(np.isfinite(grad))


def test_unbiased_estimator_averages_to_the_true_cross_entropy():
    """Over the 9 equally likely complementary labels of each image, the estimate is the
    cross-entropy of its true label: the estimator's defining property (Ishida et al. 2019)."""
    logits = _logits(n=4)
    true = jnp.array([0, 3, 7, 9])
    wrong = [[j for j in range(K) if j != t] for t in np.asarray(true)]
    # every image with each of its wrong labels: 4 x 9 examples, each label once
    batch = jnp.repeat(logits, K - 1, axis=0)
    comp = jnp.asarray(list(itertools.chain(*wrong)))
    estimate = losses.complementary_ure(batch, comp, correction="ure")
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, true).mean()
    np.testing.assert_allclose(estimate, ce, rtol=1e-5)


def test_class_risks_sum_to_the_estimate_and_padding_is_ignored():
    logits, comp = _logits(n=12), jnp.arange(12) % K
    risks = losses.class_risks(logits, comp)
    assert risks.shape == (K,)
    np.testing.assert_allclose(
        jnp.sum(risks), losses.complementary_ure(logits, comp, correction="ure"), rtol=1e-6
    )
    padded_logits = jnp.concatenate([logits, _logits(n=4, seed=5)])
    padded_comp = jnp.concatenate([comp, jnp.zeros(4, int)])
    mask = jnp.concatenate([jnp.ones(12), jnp.zeros(4)])
    np.testing.assert_allclose(
        losses.class_risks(padded_logits, padded_comp, mask), risks, rtol=1e-5, atol=1e-6
    )


def test_corrections_on_negative_partial_risks():
    """A network that is sure of the complementary labels overfits: some R_k < 0."""
    comp = jnp.arange(20) % K
    logits = -5.0 * jax.nn.one_hot(comp, K) + 0.1 * _logits(n=20)

    @jax.jit  # one program: op by op, each primitive compiles on its own (seconds, cold)
    def values(logits):
        ure, nn_, ga = (
            losses.complementary_ure(logits, comp, correction=c) for c in ("ure", "nn", "ga")
        )
        grad = jax.grad(losses.complementary_ure)(logits, comp, correction="ga")
        after = losses.class_risks(logits - 0.1 * grad, comp)
        return losses.class_risks(logits, comp), ure, nn_, ga, after

    risks, ure, nn_, ga, after = map(np.asarray, values(logits))
    assert np.all(risks < 0)
    np.testing.assert_allclose(ure, np.sum(risks), rtol=1e-6)
    np.testing.assert_allclose(nn_, np.sum(np.maximum(risks, 0)), rtol=1e-6)
    np.testing.assert_allclose(ga, -np.sum(np.minimum(risks, 0)), rtol=1e-6)
    assert nn_ > ure
    # gradient ascent: a small step against the "ga" gradient raises the negative risks
    assert np.all(after[risks < 0] > risks[risks < 0])


def test_ga_is_the_plain_estimate_when_no_risk_is_negative():
    logits, comp = 0.01 * _logits(n=40), jnp.arange(40) % K
    assert np.all(losses.class_risks(logits, comp) >= 0)
    np.testing.assert_allclose(
        losses.complementary_ure(logits, comp, correction="ga"),
        losses.complementary_ure(logits, comp, correction="ure"),
    )


def _toy_accuracy(batch_loss, seed=0, k=4, n=800, batch=64):
    """Gaussian blobs, one per class, each point labelled only with a class it is NOT: a
    linear model trained 1000 Adam steps on minibatches, `batch_loss(logits_of, x, comp,
    key)` each (logits_of: x -> logits), asserting a finite loss and gradient at every
    step. Returns the accuracy on the true classes."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    x = jnp.asarray(3.0 * np.eye(k)[true] + 0.5 * rng.normal(size=(n, k)), jnp.float32)
    comp = jnp.asarray((true + rng.integers(1, k, n)) % k)
    params = {"w": jnp.zeros((k, k)), "b": jnp.zeros(k)}
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(p, o, key):
        k_idx, k_loss = jax.random.split(key)
        idx = jax.random.choice(k_idx, n, (batch,), replace=False)

        def loss_fn(p):
            return batch_loss(lambda v: v @ p["w"] + p["b"], x[idx], comp[idx], k_loss)

        value, g = jax.value_and_grad(loss_fn)(p)
        leaves = [value, *jax.tree.leaves(g)]
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
        u, o = tx.update(g, o)
        return optax.apply_updates(p, u), o, finite

    for t in range(1000):
        params, opt, finite = step(params, opt, jax.random.PRNGKey(t))
        assert finite, f"non-finite loss or gradient at step {t}"
    pred = np.asarray(jnp.argmax(x @ params["w"] + params["b"], -1))
    return (pred == true).mean()


@pytest.mark.parametrize("name", losses.COMPLEMENTARY_LOSSES)
def test_each_loss_learns_the_true_classes_of_a_toy_problem(name):
    """A linear model trained on the toy problem's wrong labels alone, in minibatches, finds
    the true classes.

    Minibatches and a modest step matter for the unbiased estimator: full-batch
    steps of 0.05 drive its partial risks negative (overfitting) and stall at 60-90 %.
    """

    def loss(logits_of, x, comp, key):
        return losses.complementary(logits_of(x), comp, name)

    assert _toy_accuracy(loss) > 0.95


@pytest.mark.slow
def test_self_training_uses_confident_predictions_that_are_not_the_wrong_label():
    logits = jnp.array([[9.0, 0, 0], [9.0, 0, 0], [0.1, 0, 0]])
    comp = jnp.array([1, 0, 2])  # row 1's confident argmax is its complementary label
    value = losses.self_training(logits, comp, threshold=0.9)
    only_first = optax.softmax_cross_entropy_with_integer_labels(logits[:1], jnp.array([0]))[0]
    np.testing.assert_allclose(value, only_first / 3, rtol=1e-6)
    grad = jax.grad(losses.self_training)(logits, comp, 0.9)
    assert np.all(np.asarray(grad[1:]) == 0)


def test_self_training_on_another_view_takes_its_targets_from_the_first():
    logits = jnp.array([[9.0, 0, 0], [0.1, 0, 0]])
    student = jnp.array([[0.0, 2.0, 0], [5.0, 0, 0]])
    comp = jnp.array([2, 1])

    def loss(t, s):
        return losses.self_training(t, comp, 0.9, student_logits=s)

    @jax.jit  # one program: op by op, each primitive compiles on its own (seconds, cold)
    def values(logits, student):
        expected = optax.softmax_cross_entropy_with_integer_labels(student[:1], jnp.array([0]))
        return loss(logits, student), expected[0], jax.grad(loss, argnums=(0, 1))(logits, student)

    value, expected, (g_teacher, g_student) = values(logits, student)
    np.testing.assert_allclose(value, expected / 2, rtol=1e-6)
    assert np.all(np.asarray(g_teacher) == 0)  # the pseudo-labels are not differentiated
    assert np.all(np.asarray(g_student[1]) == 0) and np.any(np.asarray(g_student[0]) != 0)


def test_forward_loss_and_strong_view_self_training_learn_a_toy_problem():
    """The forward loss on one noisy view of each toy point plus self-training of a second,
    noisier view towards the first's confident answers finds the true classes."""

    def loss(logits_of, x, comp, key):
        k_weak, k_strong = jax.random.split(key)
        weak = logits_of(x + 0.1 * jax.random.normal(k_weak, x.shape))
        strong = logits_of(x + 0.8 * jax.random.normal(k_strong, x.shape))
        forward = losses.complementary_forward(weak, comp)
        return forward + losses.self_training(weak, comp, 0.9, student_logits=strong)

    assert _toy_accuracy(loss, seed=1) > 0.95


def test_argmin_decodes_the_least_likely_wrong_label():
    logits = jnp.array([[2.0, -3.0, 1.0], [0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(losses.predictions("complementary", logits), [0, 1])
    np.testing.assert_array_equal(losses.predictions("classify", logits, "argmin"), [1, 2])
    with pytest.raises(ValueError, match="decode"):
        losses.predictions("classify", logits, "median")


def test_expected_mse():
    logits = jnp.log(jnp.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]) + 1e-30)
    np.testing.assert_allclose(
        losses.expected_mse(logits, jnp.array([1, 1])), (0.25 + 4.0) / 2, rtol=1e-5
    )


def test_unknown_names_are_errors():
    logits, comp = _logits(n=2), jnp.array([0, 1])
    with pytest.raises(ValueError, match="complementary loss"):
        losses.complementary(logits, comp, "backward")
    with pytest.raises(ValueError, match="task"):
        losses.task_loss("rank", logits, comp)
