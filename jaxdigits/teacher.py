"""Labels from a teacher (config.teacher): a finished run's answer for each training image.

The teacher is a run directory or a kept run (results/runs/<run>) trained on the same
mislabeled pool from its wrong labels alone. Its answer for an image is the class of the
highest mean probability over all of its seeds (their last params), never the image's
complementary label, which is known to be wrong. A student then trains with plain
cross-entropy on these answers: no true label enters. (The mean over one-pixel shifts too,
the `shifts` decode, would cost 9 forward passes per image and seed.)
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits import defaults, models, saved_params, steps
from jaxdigits.data import pipeline
from jaxdigits.runtime import xla


def mean_probabilities(workdir, images_u8, batch_size: int = 500) -> np.ndarray:
    """float32 [N, classes]: the run's probabilities for uint8 images [N, h, w], averaged over
    its seeds."""
    config = defaults.load_saved(workdir)
    model = models.build(config)
    params, frozen = saved_params.run_part(workdir, "last")
    size, mean, std = tuple(config.data.image_size), config.data.mean, config.data.std

    def probs(params, batch):
        x = pipeline.preprocess(batch, size, mean, std)

        def one_seed(p):
            logits = model.apply({"params": steps.apply_params(p, frozen)}, x)
            return jax.nn.softmax(logits.astype(jnp.float32), -1)

        # the seeds as the trainer runs them (looped on the CPU, where vmapped convs are slow)
        return steps.over_seeds(one_seed, (0,), steps.seed_axis(config))(params).mean(0)

    probs = xla.jit(probs)

    out = []
    for start in range(0, len(images_u8), batch_size):
        batch = images_u8[start : start + batch_size]
        pad = batch_size - len(batch)  # one compiled shape: the last batch is padded
        padded = np.pad(batch, ((0, pad), (0, 0), (0, 0)))
        out.append(np.asarray(probs(params, jnp.asarray(padded)))[: len(batch)])
    return np.concatenate(out)


def labels(workdir, images_u8, complementary) -> np.ndarray:
    """int32 [N]: the teacher's answer for each image, never its complementary label."""
    probs = mean_probabilities(workdir, images_u8)
    if len(probs) != len(complementary):
        raise ValueError(f"{len(probs)} images but {len(complementary)} labels")
    probs[np.arange(len(probs)), complementary] = -1.0
    return probs.argmax(-1).astype(np.int32)
