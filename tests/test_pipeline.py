"""Device pipeline and losses: splits, resize/normalise, weighted cross-entropy, CLI errors."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdigits import losses
from jaxdigits.data import pipeline


def test_split_is_a_partition_fixed_by_seed():
    train, val = pipeline.split_indices(1000, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    again = pipeline.split_indices(1000, 0.1, seed=3)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(pipeline.split_indices(1000, 0.1, seed=4)[1], val)


def test_preprocess_resizes_and_normalises():
    images = np.full((2, 28, 28), 100, np.uint8)
    x = pipeline.preprocess(jnp.asarray(images), (90, 120), 20.0, 40.0)
    assert x.shape == (2, 90, 120, 1) and x.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(x), 2.0, rtol=1e-6)  # (100 - 20) / 40


def test_augment_keeps_shape_and_changes_images():
    import jax

    images = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (4, 90, 120)), jnp.float32)
    kwargs = dict(rotation_deg=30.0, translate=0.1, noise_std=0.1, mean=10.0, std=50.0)
    a = pipeline.augment(jax.random.PRNGKey(0), images, **kwargs)
    b = pipeline.augment(jax.random.PRNGKey(1), images, **kwargs)
    assert a.shape == (4, 90, 120, 1)
    assert not np.allclose(a, b)
    assert np.isfinite(np.asarray(a)).all()


def test_weighted_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    weights = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), weight=torch.from_numpy(weights)
    ).item()
    got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # a mask drops examples as if they were not in the batch
    masked = losses.cross_entropy(
        jnp.asarray(logits),
        jnp.asarray(labels),
        jnp.asarray(weights),
        mask=jnp.asarray([1.0] * 8 + [0.0] * 8),
    )
    head = losses.cross_entropy(
        jnp.asarray(logits[:8]), jnp.asarray(labels[:8]), jnp.asarray(weights)
    )
    np.testing.assert_allclose(float(masked), float(head), rtol=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "configs/part3.py:smok"], "unknown config arg"),
        (["--config", "configs/part3.py:smoke", "--config.nosuchkey=3"], "unknown config key"),
        (
            ["--config", "configs/part3.py:smoke", "--config.data.path=/no/such.zip"],
            "/no/such.zip: no such folder or zip file",
        ),
    ],
)
def test_train_cli_fails_with_a_clear_message(args, message, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "jaxdigits.train", *args, "--workdir", str(tmp_path / "run")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr
