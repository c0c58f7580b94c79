"""Losses and predictions, written to match their PyTorch counterparts.

A config's `task` says what the network's outputs mean and what its labels
are: "classify" (logits; cross-entropy, argmax), "regress" (one number; MSE
against the label, prediction rounded to the nearest integer) or
"complementary" (logits of the true class, trained on labels that name a
class each image is NOT; `config.loss.complementary` picks the loss below,
prediction the argmax).
"""

import jax
import jax.numpy as jnp
import optax

TASKS = ("classify", "regress", "complementary")
COMPLEMENTARY_LOSSES = ("forward", "ure", "nn", "ga")
# config.loss.selftrain_view: the view the self-training term trains. "same": the pseudo-label
# and the prediction pushed towards it come from one view; "strong": the pseudo-label comes from
# the training view and the prediction from a strongly augmented one (FixMatch).
SELFTRAIN_VIEWS = ("same", "strong")
# How a classifier's outputs are read: predictions(); "shifts" (steps.make_eval_batch) is the
# argmax of the mean probabilities over the image and its 8 shifts by one pixel.
DECODES = ("argmax", "argmin", "shifts")


def cross_entropy(logits, labels, class_weights=None, mask=None):
    """torch.nn.functional.cross_entropy(logits, labels, weight=class_weights), reduction mean.

    With class weights torch divides by the summed weights of the targets,
    not by the batch size. `mask` (0/1 per example) drops padding.
    """
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    w = jnp.ones_like(nll) if class_weights is None else jnp.asarray(class_weights)[labels]
    if mask is not None:
        w = w * mask
    return jnp.sum(w * nll) / jnp.sum(w)


def mse(outputs, targets, mask=None):
    """torch.nn.MSELoss()(outputs.squeeze(), targets): the mean squared error."""
    err = jnp.square(outputs.reshape(targets.shape) - targets.astype(outputs.dtype))
    if mask is None:
        return jnp.mean(err)
    return jnp.sum(err * mask) / jnp.sum(mask)


def expected_mse(logits, labels, mask=None):
    """Squared error of the expected class index sum_k k p_k against the label.

    For classes that are numbers (digit sums) it adds a dense signal to
    cross-entropy: it says how far off, and in which direction, where
    cross-entropy only says "not that one".
    """
    values = jnp.arange(logits.shape[-1], dtype=jnp.float32)
    expected = jnp.sum(jax.nn.softmax(logits, -1) * values, -1)
    return _mean(jnp.square(expected - labels), mask)


def _mean(values, mask):
    if mask is None:
        return jnp.mean(values)
    return jnp.sum(values * mask) / jnp.sum(mask)


def complementary_forward(logits, comp_labels, mask=None):
    """Forward-corrected loss for uniform complementary labels: mean of -log(1 - p[comp]).

    With a uniform transition, p(comp = j | x) = (1 - p(y = j | x)) / (K - 1);
    its negative log-likelihood is this loss plus the constant log(K - 1).
    Computed from logits as logsumexp over the other classes minus logsumexp
    over all, so that it stays finite when p[comp] -> 1.
    """
    k = logits.shape[-1]
    others = jnp.where(jax.nn.one_hot(comp_labels, k, dtype=bool), -jnp.inf, logits)
    nll = jax.nn.logsumexp(logits, -1) - jax.nn.logsumexp(others, -1)
    return _mean(nll, mask)


def class_risks(logits, comp_labels, mask=None):
    """Per-class partial risks [K] of Ishida et al. (2019)'s unbiased estimator, uniform labels.

    With p(x, y=k) = p(x) - (K-1) p(x, comp=k), the cross-entropy risk of
    class k is R_k = E_x[l(x, k)] - (K-1) pi_k E[l(x, k) | comp=k], where
    l(x, k) = -log p(y=k | x) and pi_k is the share of complementary label k.
    On a batch both expectations are means (masked for padding); a class
    absent from the batch contributes its first term only. Each R_k is >= 0
    in expectation, but not on a batch: an overfitting network drives them
    negative, which the "nn" and "ga" corrections act on.
    """
    k = logits.shape[-1]
    nll = -jax.nn.log_softmax(logits, -1)  # [B, K]
    w = jnp.ones(nll.shape[0]) if mask is None else mask
    onehot = jax.nn.one_hot(comp_labels, k) * w[:, None]
    n = jnp.sum(w)
    all_term = jnp.sum(nll * w[:, None], 0) / n
    comp_term = jnp.sum(nll * onehot, 0) / n  # = pi_k * E[l(x, k) | comp = k]
    return all_term - (k - 1) * comp_term


def complementary_ure(logits, comp_labels, mask=None, correction="nn"):
    """Ishida et al. (2019)'s unbiased risk estimator, as a loss to minimise.

    correction "ure": the plain estimate sum_k R_k (unbiased, may go negative);
    "nn": sum_k max(R_k, 0) (the non-negative correction); "ga": gradient
    ascent on the negative partial risks: when any R_k < 0 the loss is
    -sum_k min(R_k, 0), whose gradient raises them, otherwise sum_k R_k.
    """
    risks = class_risks(logits, comp_labels, mask)
    if correction == "ure":
        return jnp.sum(risks)
    if correction == "nn":
        return jnp.sum(jnp.maximum(risks, 0.0))
    if correction == "ga":
        negative = jnp.minimum(risks, 0.0)
        return jnp.where(jnp.any(risks < 0), -jnp.sum(negative), jnp.sum(risks))
    raise ValueError(f"unknown correction {correction!r}: use ure, nn or ga")


def self_training(logits, comp_labels, threshold, mask=None, student_logits=None):
    """Cross-entropy against the network's own confident predictions (pseudo-labels).

    Examples whose top probability in `logits` exceeds `threshold` and whose argmax is
    not their complementary label (a class they are known not to be) are
    pushed towards that argmax; the target is not differentiated. `student_logits`
    (the same images in another view, FixMatch's strong one) are the predictions pushed
    if given, else `logits` themselves. Averaged over the whole batch, so that it grows
    as more examples become confident.
    """
    probs = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
    target = jnp.argmax(probs, -1)
    keep = (jnp.max(probs, -1) > threshold) & (target != comp_labels)
    student = logits if student_logits is None else student_logits
    nll = optax.softmax_cross_entropy_with_integer_labels(student, target)
    return _mean(nll * keep, mask)


def complementary(logits, comp_labels, name="forward", mask=None):
    """The complementary loss named by config.loss.complementary."""
    if name == "forward":
        return complementary_forward(logits, comp_labels, mask)
    if name in ("ure", "nn", "ga"):
        return complementary_ure(logits, comp_labels, mask, correction=name)
    raise ValueError(f"unknown complementary loss {name!r}: use {', '.join(COMPLEMENTARY_LOSSES)}")


def task_loss(task: str, outputs, labels, class_weights=None, mask=None, complementary_loss=None):
    """The training loss of `task`. The complementary task's default is the forward loss."""
    if task == "classify":
        return cross_entropy(outputs, labels, class_weights, mask)
    if task == "regress":
        return mse(outputs, labels, mask)
    if task == "complementary":
        return complementary(outputs, labels, complementary_loss or "forward", mask)
    raise ValueError(f"unknown task {task!r}: use {', '.join(TASKS)}")


def predictions(task: str, outputs, decode: str = "argmax"):
    """Integer predictions: argmax of logits (or argmin, `decode`), or the regression output
    rounded (half to even, as torch.round).

    argmin decodes a network trained with plain cross-entropy on complementary
    labels: it learnt p(wrong label | x), whose least likely class is the true one.
    """
    if task == "regress":
        return jnp.round(outputs[..., 0]).astype(jnp.int32)
    if decode == "argmin":
        return jnp.argmin(outputs, -1).astype(jnp.int32)
    if decode != "argmax":
        raise ValueError(f"unknown decode {decode!r}: use argmax or argmin")
    return jnp.argmax(outputs, -1).astype(jnp.int32)
