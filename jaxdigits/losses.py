"""Losses and predictions, written to match their PyTorch counterparts.

A config's `task` says what the network's outputs mean: "classify"
(logits; cross-entropy, argmax) or "regress" (one number; MSE against the
label, prediction rounded to the nearest integer).
"""

import jax.numpy as jnp
import optax

TASKS = ("classify", "regress")


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


def task_loss(task: str, outputs, labels, class_weights=None, mask=None):
    if task == "classify":
        return cross_entropy(outputs, labels, class_weights, mask)
    if task == "regress":
        return mse(outputs, labels, mask)
    raise ValueError(f"unknown task {task!r}: use {' or '.join(TASKS)}")


def predictions(task: str, outputs):
    """Integer predictions: argmax of logits, or the regression output rounded (half to even,
    as torch.round)."""
    if task == "regress":
        return jnp.round(outputs[..., 0]).astype(jnp.int32)
    return jnp.argmax(outputs, -1).astype(jnp.int32)
