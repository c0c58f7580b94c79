"""Losses, written to match their PyTorch counterparts."""

import jax.numpy as jnp
import optax


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
